"""A lean forward pass over a transformers Llama's own weights, for the generator's decoding loop.

Our default model is a 1.1M-parameter Llama. One cached one-token step through
``LlamaForCausalLM.forward`` costs about 3 ms on a CPU core, of which the linear layers are under
half a millisecond: the rest is transformers' Python around them (mask building, cache classes,
rotary tables recomputed per call, output wrappers), and a reply takes about 15 such passes. This
module runs the same arithmetic (RMSNorm, rotary position embedding, scaled dot-product attention
with a KV cache, the gated SiLU MLP, the tied head) straight on the model's modules, so weights
stay shared: a LoRA merge or further training is seen at once.

It serves only the architecture it reproduces (:func:`lean_supported`); anything else, a
``PeftModel`` with unmerged adapters included, keeps the transformers forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from torch.nn import functional

__all__ = ["LeanCache", "LeanLlama", "LeanOutput", "lean_supported"]


class LeanCache:
    """Keys and values per layer, each ``(batch, kv_heads, length, head_dim)``.

    Like a transformers ``DynamicCache``, a forward pass extends it in place (the clock scoring
    feeds a time's characters in two passes on one copy), and it offers the two batch operations
    the clock scoring uses; ``copy.deepcopy`` copies it as it does one."""

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.layers = layers

    def get_seq_length(self) -> int:
        return self.layers[0][0].shape[2] if self.layers else 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.layers = [
            (k.repeat_interleave(repeats, dim=0), v.repeat_interleave(repeats, dim=0)) for k, v in self.layers
        ]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.layers = [(k[indices, ...], v[indices, ...]) for k, v in self.layers]


@dataclass(frozen=True)
class LeanOutput:
    logits: torch.Tensor
    past_key_values: LeanCache


def lean_supported(model: Any) -> bool:
    """Whether :class:`LeanLlama` computes exactly what ``model``'s own forward computes."""
    from transformers import LlamaForCausalLM

    if type(model) is not LlamaForCausalLM:  # a PeftModel, a subclass or another architecture
        return False
    config = model.config
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return bool(
        config.hidden_act == "silu"
        and rope.get("rope_type", "default") == "default"
        and not getattr(config, "attention_bias", False)
        and not getattr(config, "mlp_bias", False)
        and getattr(config, "pretraining_tp", 1) == 1
    )


class LeanLlama:
    """``model(input_ids=…|inputs_embeds=…, past_key_values=…)`` for a plain ``LlamaForCausalLM``."""

    def __init__(self, model: Any) -> None:
        if not lean_supported(model):
            raise ValueError(f"LeanLlama does not reproduce {type(model).__name__} with this config")
        config = model.config
        self.model = model
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        # The rotary tables of every position, from the model's own rotary module (its inverse
        # frequencies and attention scaling), computed once instead of on every call.
        inner = model.model
        positions = torch.arange(config.max_position_embeddings, device=model.device).unsqueeze(0)
        probe = torch.zeros(1, dtype=inner.embed_tokens.weight.dtype, device=model.device)
        with torch.no_grad():
            cos, sin = inner.rotary_emb(probe, positions)
        self.cos, self.sin = cos[0], sin[0]  # (positions, head_dim)

    def _norm(self, hidden: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        hidden = hidden.to(torch.float32)
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.eps)
        return weight * hidden.to(dtype)

    @staticmethod
    def _rotated(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        turned = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return (x * cos) + (turned * sin)

    @torch.no_grad()
    def __call__(
        self,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: LeanCache | None = None,
        use_cache: bool = True,
    ) -> LeanOutput:
        # ``use_cache`` is taken for transformers' call signature only: the cache is always returned.
        inner = self.model.model
        hidden = inner.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        batch, length, _ = hidden.shape
        past_length = past_key_values.get_seq_length() if past_key_values is not None else 0
        cos = self.cos[past_length : past_length + length].unsqueeze(0).unsqueeze(0).to(hidden.dtype)
        sin = self.sin[past_length : past_length + length].unsqueeze(0).unsqueeze(0).to(hidden.dtype)
        # A query sees every cached position and the new ones up to its own (None: one new token,
        # or a prompt without a cache, where SDPA's own causal flag says the same).
        mask = None
        if length > 1 and past_length:
            mask = torch.ones(length, past_length + length, dtype=torch.bool, device=hidden.device).tril(
                past_length
            )
        layers: list[tuple[torch.Tensor, torch.Tensor]] = []
        for index, layer in enumerate(inner.layers):
            attention = layer.self_attn
            normed = self._norm(hidden, layer.input_layernorm.weight)
            query = attention.q_proj(normed).view(batch, length, self.heads, self.head_dim).transpose(1, 2)
            key = attention.k_proj(normed).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
            value = attention.v_proj(normed).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
            query, key = self._rotated(query, cos, sin), self._rotated(key, cos, sin)
            if past_length:
                cached_key, cached_value = cast(LeanCache, past_key_values).layers[index]
                key = torch.cat([cached_key, key], dim=-2)
                value = torch.cat([cached_value, value], dim=-2)
            layers.append((key, value))
            if self.kv_heads != self.heads:
                key = key.repeat_interleave(self.heads // self.kv_heads, dim=1)
                value = value.repeat_interleave(self.heads // self.kv_heads, dim=1)
            attended = functional.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=mask,
                is_causal=mask is None and length > 1,
                scale=attention.scaling,
            )
            attended = attended.transpose(1, 2).reshape(batch, length, self.heads * self.head_dim)
            hidden = hidden + attention.o_proj(attended)
            mlp = layer.mlp
            normed = self._norm(hidden, layer.post_attention_layernorm.weight)
            hidden = hidden + mlp.down_proj(functional.silu(mlp.gate_proj(normed)) * mlp.up_proj(normed))
        hidden = self._norm(hidden, inner.norm.weight)
        if past_key_values is None:
            past_key_values = LeanCache(layers)
        else:
            past_key_values.layers = layers
        return LeanOutput(logits=self.model.lm_head(hidden), past_key_values=past_key_values)

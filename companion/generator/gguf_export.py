"""Our Llama as a GGUF file, for llama.cpp's server: tensors and byte-level BPE tokenizer written here.

Written from the GGUF format description and the ``gguf`` package's writer API (no converter
copied). What maps and what cannot:

* The LM is a plain HF ``LlamaForCausalLM`` (``build.py``), llama.cpp's ``llama`` architecture.
  Tensor names follow GGUF's llama naming (``token_embd``, ``blk.N.attn_q`` ...). The output head
  is tied to the embedding, so no ``output.weight`` is written (llama.cpp then reuses
  ``token_embd``). Tensors are stored as F32 (the models are small).
* Rotary embeddings: HF's Llama rotates the pairs ``(j, j + d/2)`` of each head ("rotate half"),
  llama.cpp's ``llama`` the pairs ``(2j, 2j + 1)``. Reordering the rows of ``q_proj`` and
  ``k_proj`` within each head, ``[x_0..x_{d/2-1}, y_0..y_{d/2-1}] -> [x_0, y_0, x_1, y_1, ...]``,
  makes the two compute the same attention (the same frequency per pair).
* The tokenizer is a byte-level BPE, GGUF's ``gpt2`` model: tokens in their byte-level spelling,
  the merges in rank order, PAD/BOS/EOS as control tokens, no BOS added. Our pre-tokenizer (brackets,
  newlines and each digit split off before the byte-level split) has no llama.cpp name; the planner
  therefore sends token ids it tokenized itself, and the server only needs the vocabulary to
  detokenize, which is exact.
* What a GGUF Llama cannot carry: the sentence-vector projection and the clock hints
  (``conditioning.py``, ``clock_hints.py``): they add vectors to the input embeddings from outside
  the token stream, and llama.cpp's server takes tokens only. A served model reads the text alone,
  as any plain causal LM does here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["export_gguf"]

_LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def _rotary_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's rows from rotate-half pairs to adjacent pairs (see the module docstring)."""
    rows, columns = weight.shape
    head_dim = rows // heads
    return weight.reshape(heads, 2, head_dim // 2, columns).swapaxes(1, 2).reshape(rows, columns).copy()


def _gguf_name(name: str) -> str | None:
    if name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if name == "model.norm.weight":
        return "output_norm.weight"
    if name == "lm_head.weight":
        return "output.weight"
    parts = name.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _LAYER_TENSORS:
        return f"blk.{parts[2]}.{_LAYER_TENSORS[parts[3]]}"
    return None


def _tokenizer(writer: Any, model_dir: Path, config: dict[str, Any]) -> None:
    import gguf

    spec = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"only a BPE tokenizer can be written as GGUF 'gpt2', not {model.get('type')!r}")
    vocab: dict[str, int] = dict(model["vocab"])
    special = {token["id"]: token["content"] for token in spec.get("added_tokens", [])}
    vocab.update({content: token_id for token_id, content in special.items()})
    size = int(config["vocab_size"])
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, token_id in vocab.items():
        if token_id < size:
            tokens[token_id] = text
            types[token_id] = gguf.TokenType.CONTROL if token_id in special else gguf.TokenType.NORMAL
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, add in (
        ("bos_token_id", writer.add_bos_token_id),
        ("eos_token_id", writer.add_eos_token_id),
        ("pad_token_id", writer.add_pad_token_id),
    ):
        if isinstance(config.get(key), int):
            add(int(config[key]))
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)


def export_gguf(model_dir: str | Path, out_file: str | Path) -> Path:
    """Write the HF Llama in ``model_dir`` (safetensors + tokenizer.json) to ``out_file`` as GGUF."""
    import gguf
    from safetensors.numpy import load_file

    source = Path(model_dir)
    config: dict[str, Any] = json.loads((source / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise ValueError(f"only a Llama can be exported, not {config.get('model_type')!r}")
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // heads)
    if config.get("rope_scaling"):
        raise ValueError("rope scaling is not exported")
    tensors = load_file(str(source / "model.safetensors"))
    out = Path(out_file)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_name(source.name)
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(hidden)
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    writer.add_rope_dimension_count(head_dim)
    theta = config.get("rope_theta") or (config.get("rope_parameters") or {}).get("rope_theta", 10000.0)
    writer.add_rope_freq_base(float(theta))
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    _tokenizer(writer, source, config)
    for name in sorted(tensors):
        target = _gguf_name(name)
        if target is None:
            raise ValueError(f"tensor {name!r} has no GGUF llama counterpart")
        if target == "output.weight" and config.get("tie_word_embeddings", False):
            continue
        weight = tensors[name].astype(np.float32)
        if target.endswith("attn_q.weight"):
            weight = _rotary_rows(weight, heads)
        elif target.endswith("attn_k.weight"):
            weight = _rotary_rows(weight, kv_heads)
        writer.add_tensor(target, weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out

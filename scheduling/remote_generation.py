"""A ``ReplySource`` on a serving engine: llama.cpp's server, vLLM, or TGI, over HTTP.

Chosen with ``SCHEDULING_REPLY_SOURCE = "scheduling.remote_generation.remote_reply_source"``.
The prompt, the constraint and the parser are the generator's own
(:mod:`companion.generator.served`): the engine gets our token ids (or the rendered text, for
TGI) and the completion language of the same time window the local decoder uses, in the form
the engine takes (``GENERATOR_SERVER_ENGINE``):

============  =====================================  =================================================
engine        endpoint                               constraint field
============  =====================================  =================================================
``llamacpp``  ``POST /v1/completions`` (token ids)   ``grammar`` (GBNF)
``vllm``      ``POST /v1/completions`` (token ids)   ``structured_outputs: {regex}`` (vLLM >= 0.10.2)
``vllm-guided`` the same                             ``guided_regex`` (older vLLM)
``tgi``       ``POST /generate`` (text)              ``parameters.grammar: {type: regex, value}``
============  =====================================  =================================================

Timeouts, connection errors and 5xx answers are retried with exponential backoff
(``GENERATOR_SERVER_RETRIES``, ``GENERATOR_SERVER_BACKOFF_SECONDS``); then
:class:`GeneratorUnavailable` is raised and the plan ends ``failed`` with the reason. A 4xx is
not retried (the request itself is wrong): it is a :class:`GenerationFailed` like a completion
that does not parse. The HTTP client is the standard library's (one request per generation; no
connection pool is needed at these rates).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from companion.generator import DEFAULT_MAX_DELAY, Dialogue, GeneratedReply, GenerationFailed, SamplingConfig
from companion.generator.served import ServedPrompts, ServedRequest
from scheduling import conf
from scheduling.generation import GeneratorUnavailable

logger = logging.getLogger(__name__)

ENGINES = ("llamacpp", "vllm", "vllm-guided", "tgi")


@dataclass(frozen=True)
class ServerConfig:
    """Where the engine is and how patiently to ask it (see the README's deployment section)."""

    url: str
    engine: str = "llamacpp"
    model: str = "companion"
    api_key: str = ""
    timeout_seconds: float = 30.0
    retries: int = 2
    backoff_seconds: float = 0.25
    tokenizer_dir: Path | None = None
    context_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(
                f"GENERATOR_SERVER_ENGINE must be one of {', '.join(ENGINES)}, not {self.engine!r}"
            )
        if self.retries < 0 or self.backoff_seconds < 0 or self.timeout_seconds <= 0:
            raise ValueError("retries and backoff must be >= 0 and the timeout > 0")

    @classmethod
    def from_settings(cls) -> ServerConfig:
        url = str(conf.setting("GENERATOR_SERVER_URL") or "")
        if not url:
            raise ValueError("GENERATOR_SERVER_URL is not set; the remote reply source needs a server")
        tokenizer_dir = conf.setting("GENERATOR_SERVER_TOKENIZER_DIR") or conf.generator_model_dir()
        context = conf.setting("GENERATOR_SERVER_CONTEXT_TOKENS")
        return cls(
            url=url.rstrip("/"),
            engine=str(conf.setting("GENERATOR_SERVER_ENGINE")),
            model=str(conf.setting("GENERATOR_SERVER_MODEL")),
            api_key=str(conf.setting("GENERATOR_SERVER_API_KEY") or ""),
            timeout_seconds=float(conf.setting("GENERATOR_SERVER_TIMEOUT_SECONDS")),
            retries=int(conf.setting("GENERATOR_SERVER_RETRIES")),
            backoff_seconds=float(conf.setting("GENERATOR_SERVER_BACKOFF_SECONDS")),
            tokenizer_dir=Path(tokenizer_dir) if tokenizer_dir != "-" else None,
            context_tokens=int(context) if context else None,
        )


class _Retryable(Exception):
    """A failure worth another try: timeout, connection error, 5xx."""


class RemoteReplySource:
    """Generates replies on a serving engine; satisfies :class:`scheduling.generation.ReplySource`."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        prompts: ServedPrompts | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        # Also for TGI (text prompts): the tokenizer still decides which oldest turns to drop.
        self.prompts = prompts or ServedPrompts(config.tokenizer_dir, context_tokens=config.context_tokens)
        self._sleep = sleep

    def generate(
        self,
        dialogue: Dialogue,
        *,
        sampling: SamplingConfig | None = None,
        forced_at: datetime | None = None,
        max_delay: timedelta = DEFAULT_MAX_DELAY,
        max_bubbles: int = 1,
    ) -> GeneratedReply:
        # The served grammar (served_grammar.py) writes one message: ``max_bubbles`` is not used.
        sampling = sampling or SamplingConfig()
        request = self.prompts.request(
            dialogue, forced_at=forced_at, max_delay=max_delay, max_new_tokens=sampling.max_new_tokens
        )
        path, body = self._body(request, sampling)
        answer = self._post(path, body)
        return self.prompts.reply(request, self._completion_text(answer))

    def _body(self, request: ServedRequest, sampling: SamplingConfig) -> tuple[str, dict[str, Any]]:
        language = request.language
        if self.config.engine == "tgi":
            parameters: dict[str, Any] = {
                "max_new_tokens": sampling.max_new_tokens,
                "grammar": {"type": "regex", "value": language.regex},
                "details": False,
            }
            if sampling.temperature > 0:
                parameters.update(do_sample=True, temperature=sampling.temperature)
                if sampling.top_p < 1:
                    parameters["top_p"] = sampling.top_p
            if sampling.seed is not None:
                parameters["seed"] = sampling.seed
            return "/generate", {"inputs": request.prompt, "parameters": parameters}
        body: dict[str, Any] = {
            "model": self.config.model,
            "prompt": list(request.prompt_ids) if request.prompt_ids is not None else request.prompt,
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if self.config.engine == "llamacpp":
            body["grammar"] = language.gbnf
        elif self.config.engine == "vllm":
            body["structured_outputs"] = {"regex": language.regex}
        else:
            body["guided_regex"] = language.regex
        return "/v1/completions", body

    def _completion_text(self, answer: dict[str, Any]) -> str:
        try:
            if self.config.engine == "tgi":
                return str(answer["generated_text"])
            return str(answer["choices"][0]["text"])
        except (KeyError, IndexError, TypeError) as error:
            raise GenerationFailed(
                f"the generator server's answer has no completion: {str(answer)[:200]}",
                reason="server_answer",
            ) from error

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.config.url + path
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        data = json.dumps(body).encode("utf-8")
        attempts = self.config.retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                self._sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
            try:
                return self._post_once(url, data, headers)
            except _Retryable as error:
                last = str(error)
                logger.warning(
                    "generator server %s: attempt %d of %d failed: %s", url, attempt + 1, attempts, last
                )
        raise GeneratorUnavailable(f"the generator server {url} failed {attempts} attempts; last: {last}")

    def _post_once(self, url: str, data: bytes, headers: dict[str, str]) -> dict[str, Any]:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_seconds) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode("utf-8", "replace")
            if error.code >= 500:
                raise _Retryable(f"HTTP {error.code}: {detail}") from error
            raise GenerationFailed(
                f"the generator server refused the request: HTTP {error.code}: {detail}",
                reason="server_refused",
            ) from error
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise _Retryable(f"{type(error).__name__}: {reason}") from error
        except json.JSONDecodeError as error:
            raise _Retryable(f"the answer is not JSON: {error}") from error
        if not isinstance(answer, dict):
            raise GenerationFailed(
                f"the generator server answered {str(answer)[:200]}", reason="server_answer"
            )
        return answer


_lock = threading.Lock()
_sources: dict[ServerConfig, RemoteReplySource] = {}


def remote_reply_source() -> RemoteReplySource:
    """The source for the configured server, one per process and configuration (the tokenizer loads once)."""
    config = ServerConfig.from_settings()
    with _lock:
        source = _sources.get(config)
        if source is None:
            source = RemoteReplySource(config)
            _sources[config] = source
        return source

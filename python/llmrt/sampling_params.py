"""SamplingParams with the names vLLM uses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Union

MAX_STOP_STRINGS = 16  # LLMRT_MAX_STOP_STRINGS
MAX_LOGPROBS = 20      # LLMRT_MAX_LOGPROBS


@dataclass
class SamplingParams:
    """How to generate; the defaults are vLLM's except max_tokens (16) and
    temperature (0: greedy, as llmrt's C defaults).

    Values are checked when a request is made from them (ValueError naming
    the field); the library checks them again at submit."""

    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0             # 0 or -1: off
    min_p: float = 0.0
    seed: Optional[int] = None  # None: 0, the C default
    stop: Optional[Union[str, List[str]]] = None
    stop_token_ids: Optional[List[int]] = None
    n: int = 1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    logprobs: Optional[int] = None  # top alternatives per token, 0..20; None: no logprobs
    ignore_eos: bool = False
    prompt_logprobs: Optional[int] = None  # score the prompt too, with this many alternatives; None: off
    bad_words: Optional[List[str]] = None  # words never generated (each as it tokenizes on its own)
    stop_strings: List[str] = field(init=False, repr=False, default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the first bad field."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(f"SamplingParams: {message}")

        need(isinstance(self.max_tokens, int) and self.max_tokens >= 0, f"max_tokens must be an int >= 0, got {self.max_tokens!r}")
        need(isinstance(self.n, int) and self.n >= 1, f"n must be an int >= 1, got {self.n!r}")
        need(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature!r}")
        need(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p!r}")
        need(isinstance(self.top_k, int) and self.top_k >= -1, f"top_k must be -1, 0 (off) or > 0, got {self.top_k!r}")
        need(0 <= self.min_p <= 1, f"min_p must be in [0, 1], got {self.min_p!r}")
        need(-2 <= self.presence_penalty <= 2, f"presence_penalty must be in [-2, 2], got {self.presence_penalty!r}")
        need(-2 <= self.frequency_penalty <= 2, f"frequency_penalty must be in [-2, 2], got {self.frequency_penalty!r}")
        need(self.repetition_penalty > 0, f"repetition_penalty must be > 0, got {self.repetition_penalty!r}")
        need(self.seed is None or (isinstance(self.seed, int) and 0 <= self.seed < 1 << 64),
             f"seed must be an int in [0, 2**64), got {self.seed!r}")
        need(self.logprobs is None or (isinstance(self.logprobs, int) and 0 <= self.logprobs <= MAX_LOGPROBS),
             f"logprobs must be None or an int in [0, {MAX_LOGPROBS}], got {self.logprobs!r}")
        need(self.prompt_logprobs is None or
             (isinstance(self.prompt_logprobs, int) and 0 <= self.prompt_logprobs <= MAX_LOGPROBS),
             f"prompt_logprobs must be None or an int in [0, {MAX_LOGPROBS}], got {self.prompt_logprobs!r}")
        need(all(isinstance(w, str) and w for w in (self.bad_words or [])), "bad_words must be non-empty strings")
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        need(all(isinstance(s, str) and s for s in stop), "stop must be non-empty strings")
        need(len(stop) <= MAX_STOP_STRINGS, f"at most {MAX_STOP_STRINGS} stop strings, got {len(stop)}")
        need(all(isinstance(i, int) and i >= 0 for i in (self.stop_token_ids or [])),
             "stop_token_ids must be ints >= 0")
        self.stop_strings = stop

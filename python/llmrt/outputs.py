"""Results of generation, shaped as vLLM's RequestOutput / CompletionOutput."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class CompletionOutput:
    """One generated sequence. `logprobs`, when asked for, holds per token a
    {token_id: logprob} dict: the chosen token and the top alternatives."""

    index: int
    text: str
    token_ids: List[int]
    finish_reason: str  # "stop", "length", "cancelled" or "error"
    logprobs: Optional[List[Dict[int, float]]] = None
    cumulative_logprob: float = 0.0


@dataclass
class RequestOutput:
    """The result of one prompt: its sequences in `outputs` (n of them).
    `text`, `token_ids`, `finish_reason` and `logprobs` are those of the first."""

    prompt: Optional[str]
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput] = field(default_factory=list)
    cached_prompt_tokens: int = 0
    # with SamplingParams.prompt_logprobs: per prompt token a {token_id:
    # logprob} dict (the token and its top alternatives); None for the first
    prompt_logprobs: Optional[List[Optional[Dict[int, float]]]] = None

    @property
    def text(self) -> str:
        return self.outputs[0].text

    @property
    def token_ids(self) -> List[int]:
        return self.outputs[0].token_ids

    @property
    def finish_reason(self) -> str:
        return self.outputs[0].finish_reason

    @property
    def logprobs(self) -> Optional[List[Dict[int, float]]]:
        return self.outputs[0].logprobs

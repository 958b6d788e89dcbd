"""The engine's tokenizer (borrowed from its runtime)."""
from __future__ import annotations

import ctypes
import json
from typing import Any, Dict, List, Sequence

from . import _lib
from .errors import check


class Tokenizer:
    """Encodes and decodes as HuggingFace `tokenizers` does with the engine's
    embedded tokenizer.json. Valid while its LLM is open."""

    def __init__(self, handle: int, owner: Any):
        self._handle = handle
        self._owner = owner  # the LLM that keeps the handle alive

    def _h(self) -> int:
        self._owner._check_open()
        return self._handle

    def encode(self, text: str, add_special_tokens: bool = True) -> List[int]:
        """Token ids of `text`; add_special_tokens applies the post-processor (BOS)."""
        if not isinstance(text, str):
            raise TypeError(f"encode: text must be a str, got {type(text).__name__}")
        raw = text.encode("utf-8", "surrogatepass")
        ids = _lib.c_int32_p()
        count = ctypes.c_size_t()
        lib = _lib.lib()
        check(lib.llmrt_tokenizer_encode(self._h(), raw, len(raw), _lib.ENCODE_ADD_SPECIAL if add_special_tokens else 0,
                                         ctypes.byref(ids), ctypes.byref(count)), "encode")
        try:
            return ids[:count.value] if count.value else []
        finally:
            lib.llmrt_free(ids)

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Text of `token_ids` (ids outside the vocabulary are skipped)."""
        ids = list(token_ids)
        arr = (ctypes.c_int32 * len(ids))(*ids)
        text = ctypes.c_void_p()
        length = ctypes.c_size_t()
        lib = _lib.lib()
        check(lib.llmrt_tokenizer_decode(self._h(), arr, len(ids), _lib.DECODE_SKIP_SPECIAL if skip_special_tokens else 0,
                                         ctypes.byref(text), ctypes.byref(length)), "decode")
        return _lib.take_string(text.value, length.value)

    @property
    def vocab_size(self) -> int:
        return int(_lib.lib().llmrt_tokenizer_vocab_size(self._h()))

    @property
    def bos_token_id(self) -> int:
        """-1 when unknown."""
        return int(_lib.lib().llmrt_tokenizer_bos_id(self._h()))

    @property
    def eos_token_id(self) -> int:
        """-1 when unknown."""
        return int(_lib.lib().llmrt_tokenizer_eos_id(self._h()))

    def apply_chat_template(self, messages: List[Dict[str, str]], add_generation_prompt: bool = True,
                            tokenize: bool = False) -> Any:
        """Renders `messages` ([{"role": ..., "content": ...}]) with the model's
        chat template, as transformers does; token ids when tokenize=True."""
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise TypeError("apply_chat_template: messages must be a list of {'role', 'content'} dicts")
        options = _lib.ChatOptions(1 if add_generation_prompt else 0, -1)
        out = ctypes.c_void_p()
        check(_lib.lib().llmrt_tokenizer_apply_chat_template(self._h(), json.dumps(messages).encode(),
                                                             ctypes.byref(options), ctypes.byref(out)),
              "apply_chat_template")
        text = _lib.take_string(out.value)
        return self.encode(text, add_special_tokens=False) if tokenize else text

"""Encoder: an encoder engine (BERT) — embeddings, the pooled vector and a
classifier's logits; no generation."""
from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Any, Dict, List, Optional, Sequence, Union

from . import _lib
from .errors import check
from .tokenizer import Tokenizer

Input = Union[str, Sequence[int]]  # text (the engine's tokenizer) or token ids
_POOLING = {"cls": 0, "mean": 1}


def _free_handles(lib: ctypes.CDLL, handles: Dict[str, Optional[int]]) -> None:
    if handles.get("tokenizer"):
        lib.llmrt_tokenizer_free(handles["tokenizer"])
    if handles.get("engine"):
        lib.llmrt_engine_free(handles["engine"])
    handles["tokenizer"] = handles["engine"] = None


class Encoder:
    """An encoder engine file (BertModel, BertForSequenceClassification).

    embed() gives one vector per input ([CLS] row of the last hidden state,
    or the mean of its rows), many inputs sharing each forward; encode()
    gives one input's every hidden row, the pooler's output and, for a
    classifier, its logits. Free it with close() or a `with` block.
    cpu_precision: "auto" (a bf16 engine's linears take bf16 activations
    where the CPU has AVX512-BF16) or "fp32" (exact); None = auto."""

    def __init__(self, engine: str, num_threads: int = 0, device: int = 0, backend: Optional[str] = None,
                 cpu_precision: Optional[str] = None):
        self._lib = lib = _lib.lib()
        self._handles: Dict[str, Optional[int]] = {"engine": None, "tokenizer": None}
        self._finalizer = weakref.finalize(self, _free_handles, lib, self._handles)
        self._lock = threading.Lock()
        eo = _lib.EngineOptions()
        lib.llmrt_engine_options_init(ctypes.byref(eo))
        eo.num_threads, eo.device = num_threads, device
        if backend is not None:
            if backend not in ("cpu", "cuda"):
                raise ValueError(f"Encoder: backend must be 'cpu' or 'cuda', got {backend!r}")
            eo.backend = backend.encode()
        if cpu_precision is not None:
            if cpu_precision not in ("auto", "fp32"):
                raise ValueError(f"Encoder: cpu_precision must be 'auto' or 'fp32', got {cpu_precision!r}")
            eo.cpu_precision = cpu_precision.encode()
        handle = ctypes.c_void_p()
        check(lib.llmrt_engine_load(engine.encode(), ctypes.byref(eo), ctypes.byref(handle)), f"loading {engine}")
        self._handles["engine"] = handle.value
        if not lib.llmrt_engine_is_encoder(handle):
            self.close()
            raise ValueError(f"Encoder: {engine} is a decoder engine (use LLM)")
        self.engine_path = engine
        self.hidden_size = int(lib.llmrt_engine_hidden_size(handle))
        self._tokenizer: Optional[Tokenizer] = None

    def close(self) -> None:
        """Frees the engine now (idempotent)."""
        with self._lock:
            self._finalizer()

    def _check_open(self) -> None:
        if self._handles["engine"] is None:
            raise ValueError("Encoder: closed")

    def __enter__(self) -> "Encoder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def tokenizer(self) -> Tokenizer:
        """The engine's tokenizer (an error if it was built without one)."""
        self._check_open()
        if self._tokenizer is None:
            out = ctypes.c_void_p()
            check(self._lib.llmrt_engine_tokenizer(self._handles["engine"], ctypes.byref(out)), "tokenizer")
            self._handles["tokenizer"] = out.value
            self._tokenizer = Tokenizer(out.value, self)
        return self._tokenizer

    def _ids(self, item: Input) -> List[int]:
        if isinstance(item, str):
            return self.tokenizer.encode(item)  # with [CLS] and [SEP]
        ids = [int(i) for i in item]
        if not ids:
            raise ValueError("Encoder: an input has no tokens")
        return ids

    def embed(self, inputs: Union[Input, Sequence[Input]], pooling: str = "cls") -> List[List[float]]:
        """One embedding per input: text, token ids, or a list of either."""
        if pooling not in _POOLING:
            raise ValueError(f"embed: pooling must be 'cls' or 'mean', got {pooling!r}")
        self._check_open()
        single = isinstance(inputs, str) or (len(inputs) > 0 and isinstance(inputs[0], int))
        ids = [self._ids(x) for x in ([inputs] if single else inputs)]
        if not ids:
            return []
        arrays = [(ctypes.c_int32 * len(x))(*x) for x in ids]
        pointers = (_lib.c_int32_p * len(ids))(*[ctypes.cast(a, _lib.c_int32_p) for a in arrays])
        counts = (ctypes.c_int32 * len(ids))(*[len(x) for x in ids])
        out = (ctypes.c_float * (len(ids) * self.hidden_size))()
        with self._lock:
            check(self._lib.llmrt_embed_batch(self._handles["engine"], pointers, counts, len(ids), _POOLING[pooling],
                                              out), "embed")
        d = self.hidden_size
        return [list(out[i * d:(i + 1) * d]) for i in range(len(ids))]

    def encode(self, item: Input, token_type_ids: Optional[Sequence[int]] = None) -> Dict[str, Any]:
        """{"hidden": rows of the last hidden state, "pooled": the pooler's
        output, "logits": the classifier's (None without a head)}."""
        self._check_open()
        ids = self._ids(item)
        if token_type_ids is not None and len(token_type_ids) != len(ids):
            raise ValueError(f"encode: {len(token_type_ids)} token_type_ids for {len(ids)} tokens")
        arr = (ctypes.c_int32 * len(ids))(*ids)
        types = (ctypes.c_int32 * len(ids))(*token_type_ids) if token_type_ids is not None else None
        enc = _lib.Encoding()
        with self._lock:
            check(self._lib.llmrt_encode(self._handles["engine"], arr, types, len(ids), ctypes.byref(enc)), "encode")
        try:
            d = enc.hidden_size
            return {"hidden": [enc.hidden[t * d:(t + 1) * d] for t in range(enc.num_tokens)],
                    "pooled": enc.pooled[:d],
                    "logits": enc.logits[:enc.num_labels] if enc.num_labels else None}
        finally:
            self._lib.llmrt_encoding_free(ctypes.byref(enc))

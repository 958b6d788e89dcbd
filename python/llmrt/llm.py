"""LLM: an engine and its runtime, driven as vLLM's and TensorRT-LLM's LLM."""
from __future__ import annotations

import codecs
import ctypes
import hashlib
import itertools
import json
import os
import threading
import weakref
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

from . import _lib
from .errors import InvalidArgumentError, check
from .outputs import CompletionOutput, RequestOutput
from .sampling_params import SamplingParams
from .tokenizer import Tokenizer

Prompt = Union[str, Dict[str, Any]]  # text, or {"prompt_token_ids": [...]}

_BUILD_OPTIONS = ("max_seq_len", "max_batch", "max_num_tokens", "seed", "random_weights", "disabled_passes",
                  "allow_nonfinite", "ignore_extra_tensors", "quant", "group_size", "quant_scheme",
                  "weight_scales", "kv_cache", "act_scales", "calib", "calib_samples", "calib_len", "smooth_alpha")
_QUANT_SCHEMES = {"default": 0, "sym": 1, "asym": 2}
_QUANTS = ("int8-wo", "int4-wo", "fp8", "w8a8")
_WEIGHT_SCALES = {"channel": 0, "tensor": 1}
_ACT_SCALES = {"dynamic": 0, "static": 1}
_KV_CACHE_DTYPES = {"auto": "", "fp8": "fp8_e4m3", "int8": "i8"}
# max_seq_len, max_batch and max_num_tokens are also the engine's load-time
# limits: an engine file given as `model` runs with them
_ENGINE_OPTIONS = ("num_threads", "device", "verify_checksum", "kv_block_size", "kv_cache_fraction",
                   "kv_cache_bytes", "max_seq_len", "max_batch", "max_num_tokens", "cpu_precision")
_RUNTIME_OPTIONS = ("max_batch", "max_num_tokens", "kv_max_blocks", "prefix_caching")
_WAIT_SLICE = 0.25  # seconds of steps per call into the library while waiting


def _cache_dir() -> str:
    """The C library's cache folder: $LLMRT_CACHE_DIR, $XDG_CACHE_HOME/llmrt, ~/.cache/llmrt."""
    if os.environ.get("LLMRT_CACHE_DIR"):
        return os.environ["LLMRT_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "llmrt")


def _free_handles(lib: ctypes.CDLL, handles: Dict[str, Optional[int]]) -> None:
    # The runtime before the engine it borrows (include/llmrt/runtime.h).
    if handles.get("runtime"):
        lib.llmrt_runtime_free(handles["runtime"])
    if handles.get("engine"):
        lib.llmrt_engine_free(handles["engine"])
    handles["runtime"] = handles["engine"] = None


class LLM:
    """A loaded engine with an in-flight-batching runtime.

    `model` is an engine file (loaded), a HuggingFace checkpoint directory
    (built once into the cache folder with `backend`, `dtype` and the build
    options, then loaded), or None / "demo" for the embedded default model.
    `backend` ("cpu" / "cuda") is also what the engine runs on, whatever it
    was built for (None: the backend it was built for); `self.backend` says
    which it runs on.

    Keyword options: build (max_seq_len, max_batch, max_num_tokens, seed,
    random_weights, disabled_passes, allow_nonfinite, ignore_extra_tensors,
    quant ("int8-wo" / "int4-wo" / "fp8" / "w8a8"), group_size, quant_scheme
    ("sym" / "asym"), weight_scales (fp8: "channel" / "tensor"),
    act_scales (fp8: "dynamic" / "static", static needs calib), calib (a
    text file run through the model for static scales and w8a8's
    SmoothQuant), calib_samples, calib_len, smooth_alpha,
    kv_cache ("fp8" / "int8": an 8-bit KV cache)),
    engine (num_threads, device, verify_checksum, kv_block_size,
    kv_cache_fraction, kv_cache_bytes, cpu_precision ("auto": a bf16
    engine's linears take bf16 activations where the CPU has AVX512-BF16;
    "fp32": exact)) and runtime (max_batch,
    max_num_tokens, kv_max_blocks, prefix_caching).

    Free it with close() or a `with` block; the garbage collector frees it
    otherwise. One LLM may be used from several threads (calls take turns);
    the library runs without the GIL, so other Python threads proceed."""

    def __init__(self, model: Optional[str] = None, backend: Optional[str] = None, dtype: Optional[str] = None,
                 **options: Any):
        known = set(_BUILD_OPTIONS) | set(_ENGINE_OPTIONS) | set(_RUNTIME_OPTIONS)
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"LLM: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if backend is not None and backend not in ("cpu", "cuda"):
            raise ValueError(f"LLM: backend must be 'cpu' or 'cuda', got {backend!r}")
        self._lib = lib = _lib.lib()
        self._handles: Dict[str, Optional[int]] = {"engine": None, "runtime": None}
        self._finalizer = weakref.finalize(self, _free_handles, lib, self._handles)
        self._lock = threading.Lock()
        self._sinks: Dict[int, Any] = {}
        self._keys = itertools.count(1)
        sinks = self._sinks

        def on_event(user_data: Optional[int], event_ptr: Any) -> int:
            sink = sinks.get(user_data or 0)
            if sink is not None:
                ev = event_ptr.contents
                if ev.sequence == 0:
                    if ev.text_len:
                        sink.chunks.append(ctypes.string_at(ev.text, ev.text_len))
                    if ev.finished:
                        sink.finished = True
            return 0

        self._callback = _lib.StreamCallback(on_event)  # kept alive as long as the runtime

        self.engine_path = self._resolve(model, backend, dtype, options)
        eo = _lib.EngineOptions()
        lib.llmrt_engine_options_init(ctypes.byref(eo))
        for name in _ENGINE_OPTIONS:
            if name in options and name != "cpu_precision":
                setattr(eo, name, options[name])
        if backend is not None:
            eo.backend = backend.encode()
        precision = options.get("cpu_precision")
        if precision is not None:
            if precision not in ("auto", "fp32"):
                raise ValueError(f"LLM: cpu_precision must be 'auto' or 'fp32', got {precision!r}")
            eo.cpu_precision = precision.encode()
        engine = ctypes.c_void_p()
        check(lib.llmrt_engine_load(self.engine_path.encode(), ctypes.byref(eo), ctypes.byref(engine)),
              f"loading {self.engine_path}")
        self._handles["engine"] = engine.value
        self.backend = lib.llmrt_engine_backend(engine).decode()
        ro = _lib.RuntimeOptions()
        lib.llmrt_runtime_options_init(ctypes.byref(ro))
        ro.background = 0  # steps run inside our single C calls (wait, step)
        for name in _RUNTIME_OPTIONS:
            if name in options:
                setattr(ro, name, int(options[name]))
        runtime = ctypes.c_void_p()
        check(lib.llmrt_runtime_create(engine, ctypes.byref(ro), ctypes.byref(runtime)), "creating the runtime")
        self._handles["runtime"] = runtime.value
        self._tokenizer: Optional[Tokenizer] = None

    # ---- lifetime ----------------------------------------------------------------
    def close(self) -> None:
        """Frees the runtime and the engine now (idempotent)."""
        with self._lock:
            self._finalizer()

    @property
    def closed(self) -> bool:
        return self._handles["runtime"] is None

    def _check_open(self) -> None:
        if self._handles["engine"] is None:
            raise ValueError("LLM is closed")

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- engines -------------------------------------------------------------------
    def _resolve(self, model: Optional[str], backend: Optional[str], dtype: Optional[str],
                 options: Dict[str, Any]) -> str:
        lib = self._lib
        if model is None or model == "demo":
            out = ctypes.c_void_p()
            check(lib.llmrt_default_engine(ctypes.byref(out)), "the default model")
            return _lib.take_string(out.value)
        model = os.fspath(model)
        if os.path.isfile(model):
            if dtype not in (None, "auto"):
                raise ValueError("LLM: dtype applies when building from a checkpoint directory, not to an engine file")
            return model
        if os.path.isdir(model):
            return self._build(model, backend or "cpu", dtype, {k: options[k] for k in _BUILD_OPTIONS if k in options})
        raise FileNotFoundError(f"LLM: {model!r} is neither an engine file nor a checkpoint directory")

    def _build(self, model_dir: str, backend: str, dtype: Optional[str], build: Dict[str, Any]) -> str:
        """Builds `model_dir` into the cache folder once per checkpoint and options."""
        lib = self._lib
        dtype_code = 0
        if dtype not in (None, "auto"):
            dtype_code = lib.llmrt_dtype_from_name(str(dtype).encode())
            if dtype_code == 0:
                raise ValueError(f"LLM: unknown dtype {dtype!r} (f32, f16, bf16, ...)")
        model_dir = os.path.realpath(model_dir)
        stamp = sorted((name, st.st_size, st.st_mtime_ns) for name in os.listdir(model_dir)
                       for st in [os.stat(os.path.join(model_dir, name))])
        calib = build.get("calib")
        calib_stamp = None
        if calib is not None and os.path.isfile(str(calib)):
            st = os.stat(str(calib))
            calib_stamp = (os.path.realpath(str(calib)), st.st_size, st.st_mtime_ns)
        key = json.dumps([model_dir, backend, dtype_code, sorted(build.items()), stamp, calib_stamp], default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        folder = os.path.join(_cache_dir(), "engines")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{os.path.basename(model_dir)}-{backend}-{digest}.engine")
        if os.path.isfile(path):
            return path
        tmp = f"{path}.tmp{os.getpid()}"
        bo = _lib.BuildOptions()
        lib.llmrt_build_options_init(ctypes.byref(bo))
        bo.model_dir = model_dir.encode()
        bo.output_path = tmp.encode()
        bo.backend = backend.encode()
        bo.dtype = dtype_code
        for name, value in build.items():
            if name == "quant":
                code = lib.llmrt_dtype_from_name(str(value).encode()) if value not in (None, "none") else 0
                if value not in (None, "none") and str(value) not in _QUANTS:
                    raise ValueError(f"LLM: quant must be one of {', '.join(_QUANTS)} or None, got {value!r}")
                bo.quant = code
            elif name == "weight_scales":
                if value not in _WEIGHT_SCALES:
                    raise ValueError(f"LLM: weight_scales must be 'channel' or 'tensor', got {value!r}")
                bo.quant_per_tensor = _WEIGHT_SCALES[value]
            elif name == "act_scales":
                if value not in _ACT_SCALES:
                    raise ValueError(f"LLM: act_scales must be 'dynamic' or 'static', got {value!r}")
                bo.act_scales = _ACT_SCALES[value]
            elif name == "calib":
                if not os.path.isfile(str(value)):
                    raise FileNotFoundError(f"LLM: calib {value!r} is not a file")
                bo.calib_path = os.path.realpath(str(value)).encode()
            elif name == "smooth_alpha":
                bo.smooth_alpha = float(value)
            elif name == "kv_cache":
                if value not in _KV_CACHE_DTYPES:
                    raise ValueError(f"LLM: kv_cache must be 'fp8', 'int8' or 'auto', got {value!r}")
                bo.kv_cache = lib.llmrt_dtype_from_name(_KV_CACHE_DTYPES[value].encode()) if value != "auto" else 0
            elif name == "quant_scheme":
                if value not in _QUANT_SCHEMES:
                    raise ValueError(f"LLM: quant_scheme must be 'sym' or 'asym', got {value!r}")
                bo.quant_scheme = _QUANT_SCHEMES[value]
            else:
                setattr(bo, name, value.encode() if isinstance(value, str) else int(value))
        try:
            check(lib.llmrt_build(ctypes.byref(bo)), f"building {model_dir}")
            os.replace(tmp, path)  # a finished engine appears whole, or not at all
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    # ---- tokens --------------------------------------------------------------------
    @property
    def tokenizer(self) -> Tokenizer:
        """The engine's tokenizer (an error if it was built without one)."""
        self._check_open()
        if self._tokenizer is None:
            out = ctypes.c_void_p()
            with self._lock:
                check(self._lib.llmrt_runtime_tokenizer(self._handles["runtime"], ctypes.byref(out)), "tokenizer")
            self._tokenizer = Tokenizer(out.value, self)
        return self._tokenizer

    def get_tokenizer(self) -> Tokenizer:
        return self.tokenizer

    def apply_chat_template(self, messages: List[Dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The conversation rendered with the model's chat template."""
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)

    def _prompt_ids(self, prompt: Prompt) -> List[int]:
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt)  # with BOS, as `llmrt run --prompt`
        if isinstance(prompt, dict) and "prompt_token_ids" in prompt:
            ids = list(prompt["prompt_token_ids"])
            if not all(isinstance(i, int) for i in ids):
                raise TypeError("prompt_token_ids must be ints")
            return ids
        raise TypeError(f"a prompt is a str or {{'prompt_token_ids': [...]}}, got {type(prompt).__name__}")

    # ---- generation ----------------------------------------------------------------
    def _submit(self, ids: Sequence[int], params: SamplingParams, user_data: int = 0) -> int:
        lib = self._lib
        params.validate()
        if not ids:
            raise ValueError("generate: a prompt needs at least one token")
        req = _lib.Request()
        lib.llmrt_request_init(ctypes.byref(req))
        prompt = (ctypes.c_int32 * len(ids))(*ids)
        req.prompt_ids = prompt
        req.num_prompt_ids = len(ids)
        s = req.sampling
        s.max_tokens = params.max_tokens
        s.temperature = params.temperature
        s.top_k = max(params.top_k, 0)
        s.top_p = params.top_p
        s.seed = params.seed or 0
        s.ignore_eos = 1 if params.ignore_eos else 0
        stop_ids = (ctypes.c_int32 * len(params.stop_token_ids or []))(*(params.stop_token_ids or []))
        s.stop_ids = stop_ids
        s.num_stop_ids = len(stop_ids)
        req.min_p = params.min_p
        req.repetition_penalty = params.repetition_penalty
        req.presence_penalty = params.presence_penalty
        req.frequency_penalty = params.frequency_penalty
        stops = (ctypes.c_char_p * len(params.stop_strings))(*(x.encode() for x in params.stop_strings))
        req.stop = stops
        req.num_stop = len(stops)
        req.n = params.n
        req.logprobs = max(params.logprobs or 0, params.prompt_logprobs or 0)
        req.prompt_logprobs = 1 if params.prompt_logprobs is not None else 0
        words = [self.tokenizer.encode(w, add_special_tokens=False) for w in (params.bad_words or [])]
        words = [w for w in words if w]
        bad_ids = (ctypes.c_int32 * sum(len(w) for w in words))(*(i for w in words for i in w))
        bad_lengths = (ctypes.c_int32 * len(words))(*(len(w) for w in words))
        req.bad_word_ids = bad_ids
        req.bad_word_lengths = bad_lengths
        req.num_bad_words = len(words)
        if user_data:
            req.callback = self._callback
            req.user_data = user_data
        rid = ctypes.c_uint64()
        with self._lock:
            self._check_open()
            check(lib.llmrt_runtime_submit(self._handles["runtime"], ctypes.byref(req), ctypes.byref(rid)),
                  "submit")
        return rid.value

    def _wait(self, rid: int, prompt: Optional[str], ids: List[int], params: SamplingParams) -> RequestOutput:
        """Runs steps until `rid` is done. Each call into the library runs
        steps for up to _WAIT_SLICE seconds without the GIL; between them
        Python handles signals, so Ctrl-C interrupts a long generate."""
        res = _lib.Result()
        done = ctypes.c_int()
        while not done.value:
            with self._lock:
                self._check_open()
                check(self._lib.llmrt_runtime_wait(self._handles["runtime"], rid, _WAIT_SLICE, ctypes.byref(res),
                                                   ctypes.byref(done)), "wait")
        try:
            if res.status != _lib.OK:
                raise InvalidArgumentError((res.error or b"request failed").decode("utf-8", "replace"), res.status)
            return _convert(res, prompt, ids, params)
        finally:
            self._lib.llmrt_result_free(ctypes.byref(res))

    def _retire(self, rid: int) -> None:
        """Cancels a request and drops its result."""
        if self.closed:
            return
        res = _lib.Result()
        done = ctypes.c_int()
        with self._lock:
            self._lib.llmrt_runtime_cancel(self._handles["runtime"], rid)
            if self._lib.llmrt_runtime_wait(self._handles["runtime"], rid, -1.0, ctypes.byref(res),
                                            ctypes.byref(done)) == _lib.OK and done.value:
                self._lib.llmrt_result_free(ctypes.byref(res))

    def generate(self, prompts: Union[Prompt, Sequence[Prompt]],
                 sampling_params: Optional[Union[SamplingParams, Sequence[SamplingParams]]] = None,
                 use_tqdm: bool = False) -> List[RequestOutput]:
        """Generates for one prompt or a list of them, all submitted at once
        and batched by the runtime; returns one RequestOutput per prompt, in order."""
        plist: List[Prompt] = [prompts] if isinstance(prompts, (str, dict)) else list(prompts)
        if sampling_params is None:
            sampling_params = SamplingParams()
        if isinstance(sampling_params, SamplingParams):
            plist_params = [sampling_params] * len(plist)
        else:
            plist_params = list(sampling_params)
            if len(plist_params) != len(plist):
                raise ValueError(f"generate: {len(plist_params)} sampling_params for {len(plist)} prompts")
        for p in plist_params:
            if not isinstance(p, SamplingParams):
                raise TypeError(f"sampling_params must be SamplingParams, got {type(p).__name__}")
        encoded = [self._prompt_ids(p) for p in plist]
        rids: List[int] = []
        try:
            for ids, params in zip(encoded, plist_params):
                rids.append(self._submit(ids, params))
            outputs = []
            for i, rid in enumerate(rids):
                outputs.append(self._wait(rid, plist[i] if isinstance(plist[i], str) else None, encoded[i],
                                          plist_params[i]))
                rids[i] = 0
            return outputs
        finally:
            for rid in rids:
                if rid:
                    self._retire(rid)

    def generate_stream(self, prompt: Prompt, sampling_params: Optional[SamplingParams] = None) -> Iterator[str]:
        """Yields the text of the first sequence as it is generated; the pieces
        concatenate to generate()'s text. Closing the iterator early cancels it."""
        params = sampling_params or SamplingParams()
        ids = self._prompt_ids(prompt)
        key = next(self._keys)

        class _Sink:
            chunks: List[bytes]
            finished = False

        sink = _Sink()
        sink.chunks = []
        self._sinks[key] = sink
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        rid = 0
        try:
            rid = self._submit(ids, params, user_data=key)
            busy = ctypes.c_int()
            while not sink.finished:
                with self._lock:
                    self._check_open()
                    check(self._lib.llmrt_runtime_step(self._handles["runtime"], ctypes.byref(busy)), "step")
                if sink.chunks:
                    text = decoder.decode(b"".join(sink.chunks))
                    sink.chunks.clear()
                    if text:
                        yield text
                if not busy.value and not sink.finished:
                    break  # nothing left to run: the request ended without a final event
            self._wait(rid, None, ids, params)
            rid = 0
            tail = decoder.decode(b"".join(sink.chunks), final=True)
            if tail:
                yield tail
        finally:
            self._sinks.pop(key, None)
            if rid:
                self._retire(rid)

    def chat(self, messages: List[Dict[str, str]], sampling_params: Optional[SamplingParams] = None,
             add_generation_prompt: bool = True) -> RequestOutput:
        """Generates the assistant's reply to a conversation."""
        ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
        return self.generate({"prompt_token_ids": ids}, sampling_params)[0]


def _prompt_logprobs(p: _lib.PromptLogprobs, alternatives: int) -> List[Optional[Dict[int, float]]]:
    scores: List[Optional[Dict[int, float]]] = [None]
    k = p.num_top
    for j in range(1, p.num_tokens):
        d = {p.top_ids[j * k + t]: p.top_logprobs[j * k + t] for t in range(min(k, alternatives))}
        d.setdefault(p.ids[j], p.logprobs[j])
        scores.append(d)
    return scores


def _convert(res: _lib.Result, prompt: Optional[str], ids: List[int], params: SamplingParams) -> RequestOutput:
    with_logprobs = params.logprobs is not None
    out = RequestOutput(prompt=prompt, prompt_token_ids=ids, cached_prompt_tokens=res.cached_prompt_tokens)
    if params.prompt_logprobs is not None and res.prompt.num_tokens:
        out.prompt_logprobs = _prompt_logprobs(res.prompt, params.prompt_logprobs)
    for i in range(res.num_sequences):
        s = res.sequences[i]
        n = s.num_output
        tokens = s.output_ids[:n] if n else []
        text = ctypes.string_at(s.text, s.text_len).decode("utf-8", "replace") if s.text else ""
        logprobs = None
        if with_logprobs:
            k = s.num_top
            logprobs = []
            for j in range(n):
                d = {s.top_ids[j * k + t]: s.top_logprobs[j * k + t] for t in range(min(k, params.logprobs or 0))}
                d.setdefault(tokens[j], s.logprobs[j])
                logprobs.append(d)
        out.outputs.append(CompletionOutput(index=i, text=text, token_ids=tokens,
                                            finish_reason=(s.finish_reason or b"").decode(),
                                            logprobs=logprobs, cumulative_logprob=s.cumulative_logprob))
    return out

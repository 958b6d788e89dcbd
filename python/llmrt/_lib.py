"""ctypes bindings of the public C API (include/llmrt/*.h).

Only what the Python API uses is declared. Structs mirror the C layouts
field by field; their defaults always come from the C `_init` functions.
ctypes.CDLL releases the GIL for the length of every foreign call, so a
long call (a runtime step or wait) lets other Python threads run.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (POINTER, Structure, c_char_p, c_double, c_float, c_int, c_int32, c_size_t, c_uint64,
                    c_void_p)
from typing import Optional

c_int32_p = POINTER(c_int32)
c_float_p = POINTER(c_float)

# Status codes (include/llmrt/status.h).
OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_IO = 2
ERR_FORMAT = 3
ERR_UNSUPPORTED = 4
ERR_OUT_OF_MEMORY = 5
ERR_NOT_FOUND = 6
ERR_CAPACITY = 10

ENCODE_ADD_SPECIAL = 1
DECODE_SKIP_SPECIAL = 1


class BuildOptions(Structure):
    _fields_ = [("model_dir", c_char_p), ("config_path", c_char_p), ("random_weights", c_int),
                ("seed", c_uint64), ("output_path", c_char_p), ("backend", c_char_p), ("dtype", c_int),
                ("max_seq_len", c_int32), ("max_batch", c_int32), ("max_num_tokens", c_int32),
                ("disabled_passes", c_char_p), ("allow_nonfinite", c_int), ("ignore_extra_tensors", c_int),
                ("quant", c_int), ("group_size", c_int32), ("quant_scheme", c_int32),
                ("onnx_path", c_char_p), ("print_report", c_int), ("tp_size", c_int32), ("pp_size", c_int32),
                ("quant_per_tensor", c_int32), ("act_scales", c_int32),
                ("calib_path", c_char_p), ("calib_samples", c_int32), ("calib_len", c_int32),
                ("smooth_alpha", c_float),
                ("kv_cache", c_int)]


class EngineOptions(Structure):
    _fields_ = [("num_threads", c_int32), ("device", c_int32), ("verify_checksum", c_int),
                ("kv_block_size", c_int32), ("kv_cache_fraction", c_float), ("kv_cache_bytes", c_uint64),
                ("max_seq_len", c_int32), ("max_batch", c_int32), ("max_num_tokens", c_int32),
                ("comm_timeout_ms", c_int32), ("backend", c_char_p), ("cpu_precision", c_char_p)]


class SamplingParamsC(Structure):
    _fields_ = [("max_tokens", c_int32), ("temperature", c_float), ("top_k", c_int32), ("top_p", c_float),
                ("seed", c_uint64), ("ignore_eos", c_int), ("stop_ids", c_int32_p), ("num_stop_ids", c_int32)]


class PromptLogprobs(Structure):
    _fields_ = [("num_tokens", c_int32), ("ids", c_int32_p), ("logprobs", c_float_p), ("num_top", c_int32),
                ("top_ids", c_int32_p), ("top_logprobs", c_float_p)]


class TokenEvent(Structure):
    _fields_ = [("request", c_uint64), ("sequence", c_int32), ("token_id", c_int32), ("logprob", c_float),
                ("num_top", c_int32), ("top_ids", c_int32_p), ("top_logprobs", c_float_p),
                ("text", c_void_p), ("text_len", c_size_t), ("finished", c_int), ("finish_reason", c_char_p),
                ("prompt", POINTER(PromptLogprobs))]


StreamCallback = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(TokenEvent))


class Request(Structure):
    _fields_ = [("prompt_ids", c_int32_p), ("num_prompt_ids", c_int32), ("prompt_text", c_char_p),
                ("sampling", SamplingParamsC), ("min_p", c_float), ("repetition_penalty", c_float),
                ("presence_penalty", c_float), ("frequency_penalty", c_float), ("stop", POINTER(c_char_p)),
                ("num_stop", c_int32), ("n", c_int32), ("num_beams", c_int32), ("length_penalty", c_float),
                ("early_stopping", c_int), ("logprobs", c_int32), ("detokenize", c_int),
                ("callback", StreamCallback), ("user_data", c_void_p), ("bad_word_ids", c_int32_p),
                ("bad_word_lengths", c_int32_p), ("num_bad_words", c_int32), ("prompt_logprobs", c_int)]


class SequenceOutput(Structure):
    _fields_ = [("output_ids", c_int32_p), ("num_output", c_int32), ("logprobs", c_float_p), ("num_top", c_int32),
                ("top_ids", c_int32_p), ("top_logprobs", c_float_p), ("text", c_void_p), ("text_len", c_size_t),
                ("cumulative_logprob", c_double), ("score", c_double), ("finish_reason", c_char_p)]


class Result(Structure):
    _fields_ = [("id", c_uint64), ("status", c_int), ("error", c_char_p), ("prompt_tokens", c_int32),
                ("cached_prompt_tokens", c_int32), ("num_sequences", c_int32),
                ("sequences", POINTER(SequenceOutput)), ("queue_seconds", c_double), ("ttft_seconds", c_double),
                ("e2e_seconds", c_double), ("num_token_times", c_int32), ("token_times", POINTER(c_double)),
                ("num_preemptions", c_int32), ("prompt", PromptLogprobs)]


class RuntimeOptions(Structure):
    _fields_ = [("background", c_int), ("max_batch", c_int32), ("max_num_tokens", c_int32),
                ("kv_max_blocks", c_int32), ("prefix_caching", c_int)]


class Encoding(Structure):
    _fields_ = [("num_tokens", c_int32), ("hidden_size", c_int32), ("hidden", c_float_p), ("pooled", c_float_p),
                ("num_labels", c_int32), ("logits", c_float_p)]


class ChatOptions(Structure):
    _fields_ = [("add_generation_prompt", c_int), ("enable_thinking", c_int)]


def _candidates() -> list:
    here = os.path.dirname(os.path.abspath(__file__))
    found = []
    env = os.environ.get("LLMRT_LIBRARY")
    if env:
        return [env]  # an explicit choice is never second-guessed
    found.append(os.path.join(here, "libllmrt.so"))  # installed next to the package
    repo = os.path.dirname(os.path.dirname(here))
    found.append(os.path.join(repo, "build", "libllmrt.so"))  # the source tree's build
    system = ctypes.util.find_library("llmrt")  # make install
    if system:
        found.append(system)
    return found


def _declare(lib: ctypes.CDLL) -> None:
    S = c_int  # llmrt_status
    sigs = {
        "llmrt_version": (c_char_p, []),
        "llmrt_plugin_load": (S, [c_char_p]),
        "llmrt_free": (None, [c_void_p]),
        "llmrt_set_log_level": (None, [c_int]),
        "llmrt_last_error": (c_char_p, []),
        "llmrt_status_name": (c_char_p, [c_int]),
        "llmrt_dtype_from_name": (c_int, [c_char_p]),
        "llmrt_build_options_init": (None, [POINTER(BuildOptions)]),
        "llmrt_build": (S, [POINTER(BuildOptions)]),
        "llmrt_default_engine": (S, [POINTER(c_void_p)]),
        "llmrt_engine_options_init": (None, [POINTER(EngineOptions)]),
        "llmrt_engine_load": (S, [c_char_p, POINTER(EngineOptions), POINTER(c_void_p)]),
        "llmrt_engine_free": (None, [c_void_p]),
        "llmrt_engine_vocab_size": (c_int32, [c_void_p]),
        "llmrt_engine_max_seq_len": (c_int32, [c_void_p]),
        "llmrt_engine_backend": (c_char_p, [c_void_p]),
        "llmrt_runtime_options_init": (None, [POINTER(RuntimeOptions)]),
        "llmrt_runtime_create": (S, [c_void_p, POINTER(RuntimeOptions), POINTER(c_void_p)]),
        "llmrt_runtime_free": (None, [c_void_p]),
        "llmrt_runtime_tokenizer": (S, [c_void_p, POINTER(c_void_p)]),
        "llmrt_request_init": (None, [POINTER(Request)]),
        "llmrt_runtime_submit": (S, [c_void_p, POINTER(Request), POINTER(c_uint64)]),
        "llmrt_runtime_cancel": (None, [c_void_p, c_uint64]),
        "llmrt_runtime_wait": (S, [c_void_p, c_uint64, c_double, POINTER(Result), POINTER(c_int)]),
        "llmrt_runtime_step": (S, [c_void_p, POINTER(c_int)]),
        "llmrt_result_free": (None, [POINTER(Result)]),
        "llmrt_tokenizer_encode": (S, [c_void_p, c_char_p, c_size_t, c_int, POINTER(c_int32_p),
                                       POINTER(c_size_t)]),
        "llmrt_tokenizer_decode": (S, [c_void_p, c_int32_p, c_size_t, c_int, POINTER(c_void_p),
                                       POINTER(c_size_t)]),
        "llmrt_tokenizer_vocab_size": (c_size_t, [c_void_p]),
        "llmrt_tokenizer_bos_id": (c_int32, [c_void_p]),
        "llmrt_tokenizer_eos_id": (c_int32, [c_void_p]),
        "llmrt_tokenizer_apply_chat_template": (S, [c_void_p, c_char_p, POINTER(ChatOptions), POINTER(c_void_p)]),
        # encoders
        "llmrt_engine_is_encoder": (c_int, [c_void_p]),
        "llmrt_engine_hidden_size": (c_int32, [c_void_p]),
        "llmrt_engine_tokenizer": (S, [c_void_p, POINTER(c_void_p)]),
        "llmrt_tokenizer_free": (None, [c_void_p]),
        "llmrt_encode": (S, [c_void_p, c_int32_p, c_int32_p, c_int32, POINTER(Encoding)]),
        "llmrt_encoding_free": (None, [POINTER(Encoding)]),
        "llmrt_embed_batch": (S, [c_void_p, POINTER(c_int32_p), c_int32_p, c_int32, c_int, c_float_p]),
    }
    for name, (restype, argtypes) in sigs.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


_lib: Optional[ctypes.CDLL] = None


def lib() -> ctypes.CDLL:
    """The loaded libllmrt.so: $LLMRT_LIBRARY, else next to this package,
    else the source tree's build/, else the system's (make install)."""
    global _lib
    if _lib is None:
        errors = []
        for path in _candidates():
            if not os.path.exists(path) and os.sep in path:
                errors.append(f"{path}: not found")
                continue
            try:
                loaded = ctypes.CDLL(path)
            except OSError as e:
                errors.append(f"{path}: {e}")
                continue
            _declare(loaded)
            _lib = loaded
            break
        else:
            raise ImportError("llmrt: cannot load libllmrt.so (set LLMRT_LIBRARY to its path); tried "
                              + "; ".join(errors))
    return _lib


def take_string(ptr: Optional[int], length: Optional[int] = None) -> str:
    """Copies a malloc'd C string into Python and frees it."""
    if not ptr:
        return ""
    try:
        raw = ctypes.string_at(ptr, length) if length is not None else ctypes.string_at(ptr)
    finally:
        lib().llmrt_free(ptr)
    return raw.decode("utf-8", "replace")

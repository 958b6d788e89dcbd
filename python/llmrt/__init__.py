"""llmrt: LLM inference from Python over libllmrt (ctypes, standard library only).

    from llmrt import LLM, SamplingParams
    llm = LLM()  # the embedded demo model; or an engine file / checkpoint dir
    print(llm.generate(["Once upon a time"], SamplingParams(max_tokens=32))[0].text)
"""
from ._lib import lib as _load_library
from .encoder import Encoder
from .errors import InvalidArgumentError, LLMRTError, NotFoundError, check as _check
from .llm import LLM
from .outputs import CompletionOutput, RequestOutput
from .sampling_params import SamplingParams
from .tokenizer import Tokenizer

__all__ = ["LLM", "Encoder", "SamplingParams", "RequestOutput", "CompletionOutput", "Tokenizer", "LLMRTError",
           "InvalidArgumentError", "NotFoundError", "version", "load_plugin"]
__version__ = "0.1.0"


def version() -> str:
    """The C library's version string."""
    return _load_library().llmrt_version().decode()


def load_plugin(path: str) -> None:
    """Loads a plugin library (custom ops, include/llmrt/plugin.h) into the
    process, as `llmrt run --plugin` does; engines that use its ops can then
    be loaded. Raises NotFoundError if the library cannot be loaded."""
    _check(_load_library().llmrt_plugin_load(path.encode()), "load_plugin")

"""Exceptions carrying the C library's messages (llmrt_last_error)."""
from __future__ import annotations

from . import _lib


class LLMRTError(RuntimeError):
    """A call into libllmrt failed; `status` is the llmrt_status code and
    `status_name` its short name (e.g. "format error")."""

    def __init__(self, message: str, status: int = 0, status_name: str = ""):
        super().__init__(message)
        self.status = status
        self.status_name = status_name


class InvalidArgumentError(LLMRTError, ValueError):
    """The library refused a value (LLMRT_ERR_INVALID_ARGUMENT, or a request
    beyond the engine's limits)."""


class NotFoundError(LLMRTError, LookupError):
    """A file could not be read, or a tensor, field or template is missing
    (LLMRT_ERR_IO / LLMRT_ERR_NOT_FOUND)."""


def check(status: int, what: str = "") -> None:
    """Raises the exception for a non-zero llmrt_status, with the thread's
    llmrt_last_error() message. Must run on the thread that made the call."""
    if status == _lib.OK:
        return
    lib = _lib.lib()
    message = (lib.llmrt_last_error() or b"").decode("utf-8", "replace")
    name = (lib.llmrt_status_name(status) or b"").decode()
    if not message:
        message = name or f"status {status}"
    if what:
        message = f"{what}: {message}"
    if status in (_lib.ERR_INVALID_ARGUMENT, _lib.ERR_CAPACITY):
        raise InvalidArgumentError(message, status, name)
    if status in (_lib.ERR_IO, _lib.ERR_NOT_FOUND):
        raise NotFoundError(message, status, name)
    raise LLMRTError(message, status, name)

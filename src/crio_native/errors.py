"""Typed errors, each carrying the gRPC status code the CRI edge answers with.

Only crio_native.cri.edge turns these into gRPC statuses; everything below the
edge raises them (with `raise ... from e` for context)."""
from __future__ import annotations

import errno as errno_mod
import os

import grpc


class CrioNativeError(Exception):
    """Base of every error the daemon answers with a definite gRPC code."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class NotFound(CrioNativeError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(CrioNativeError):
    code = grpc.StatusCode.ALREADY_EXISTS


class InvalidArgument(CrioNativeError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(CrioNativeError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(CrioNativeError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(CrioNativeError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(CrioNativeError):
    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(CrioNativeError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(CrioNativeError):
    code = grpc.StatusCode.INTERNAL


class ConfigError(Exception):
    """A configuration file, key or flag is invalid.  Fatal at startup (exit 2)."""

    def __init__(self, key: str, reason: str, source: str | None = None):
        self.key = key
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {reason}")


class NativeError(OSError):
    """A failed system call in the compiled core.

    `strerror` carries the C side's "syscall `path`" message.  Instances are
    made by native_error(), which also mixes in the builtin OSError subclass
    for the errno, so `except FileNotFoundError` still matches."""


# errno -> the builtin OSError subclass Python itself would pick.
_BUILTIN_FOR_ERRNO: dict[int, type[OSError]] = {
    errno_mod.ENOENT: FileNotFoundError,
    errno_mod.EEXIST: FileExistsError,
    errno_mod.EACCES: PermissionError,
    errno_mod.EPERM: PermissionError,
    errno_mod.ESRCH: ProcessLookupError,
    errno_mod.ECHILD: ChildProcessError,
    errno_mod.EINTR: InterruptedError,
    errno_mod.EISDIR: IsADirectoryError,
    errno_mod.ENOTDIR: NotADirectoryError,
    errno_mod.EAGAIN: BlockingIOError,
    errno_mod.EALREADY: BlockingIOError,
    errno_mod.EINPROGRESS: BlockingIOError,
    errno_mod.ETIMEDOUT: TimeoutError,
    errno_mod.ECONNREFUSED: ConnectionRefusedError,
    errno_mod.ECONNRESET: ConnectionResetError,
    errno_mod.ECONNABORTED: ConnectionAbortedError,
    errno_mod.EPIPE: BrokenPipeError,
}


def _native_subclass(builtin: type[OSError]) -> type[NativeError]:
    # Module-level classes with real names, so the errors pickle (tests send
    # them across fork) and print as NativeFileNotFoundError etc.
    name = f"Native{builtin.__name__}"
    cls = type(name, (NativeError, builtin), {"__module__": __name__})
    globals()[name] = cls
    return cls


_NATIVE_SUBCLASSES: dict[type[OSError], type[NativeError]] = {
    builtin: _native_subclass(builtin) for builtin in set(_BUILTIN_FOR_ERRNO.values())
}


def native_error(err: int, message: str) -> NativeError:
    """Build the NativeError for errno `err` and a "syscall `path`" message."""
    builtin = _BUILTIN_FOR_ERRNO.get(err)
    cls = _NATIVE_SUBCLASSES[builtin] if builtin is not None else NativeError
    text = f"{message}: {os.strerror(err)}" if message else os.strerror(err)
    return cls(err, text)

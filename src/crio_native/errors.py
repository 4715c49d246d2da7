"""Typed errors, each carrying the kind of failure it is.

Only crio_native.cri.edge turns a kind into a gRPC status code; everything
below the edge raises these (with `raise ... from e` for context) and knows
nothing of gRPC."""
from __future__ import annotations

import enum
import errno as errno_mod
import os


class ErrorKind(enum.Enum):
    """What went wrong, in the terms a caller can act on.  The edge maps each
    kind to the gRPC status code of the same name."""

    NOT_FOUND = "not_found"
    ALREADY_EXISTS = "already_exists"
    INVALID_ARGUMENT = "invalid_argument"
    FAILED_PRECONDITION = "failed_precondition"
    RESOURCE_EXHAUSTED = "resource_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    UNAVAILABLE = "unavailable"
    UNIMPLEMENTED = "unimplemented"
    UNAUTHENTICATED = "unauthenticated"
    CANCELLED = "cancelled"
    INTERNAL = "internal"


class CrioNativeError(Exception):
    """Base of every error the daemon answers with a definite status."""

    kind: ErrorKind = ErrorKind.INTERNAL


class NotFound(CrioNativeError):
    kind = ErrorKind.NOT_FOUND


class AlreadyExists(CrioNativeError):
    kind = ErrorKind.ALREADY_EXISTS


class InvalidArgument(CrioNativeError):
    kind = ErrorKind.INVALID_ARGUMENT


class FailedPrecondition(CrioNativeError):
    kind = ErrorKind.FAILED_PRECONDITION


class ResourceExhausted(CrioNativeError):
    kind = ErrorKind.RESOURCE_EXHAUSTED


class DeadlineExceeded(CrioNativeError):
    kind = ErrorKind.DEADLINE_EXCEEDED


class Unavailable(CrioNativeError):
    kind = ErrorKind.UNAVAILABLE


class Unimplemented(CrioNativeError):
    kind = ErrorKind.UNIMPLEMENTED


class Unauthenticated(CrioNativeError):
    kind = ErrorKind.UNAUTHENTICATED


class Cancelled(CrioNativeError):
    """The caller gave up (cancellation.py): nobody reads the answer, but
    the logs and the call metrics say so."""
    kind = ErrorKind.CANCELLED


class Internal(CrioNativeError):
    kind = ErrorKind.INTERNAL


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

    # set only on launch failures: the step of the child that failed
    stage: str


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

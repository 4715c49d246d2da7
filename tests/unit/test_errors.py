"""The error contract: native errno mapping and typed error -> gRPC status at the edge."""
from __future__ import annotations

import errno

import grpc
import pytest

from crio_native import errors
from crio_native.cri import edge


class Aborted(Exception):
    pass


class RecordingContext:
    """Stands in for grpc.ServicerContext: records what the edge aborts with."""

    def __init__(self):
        self.code = None
        self.details = None

    def abort(self, code, details):
        self.code, self.details = code, details
        raise Aborted()


@pytest.mark.parametrize("cls, code", [
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (errors.Internal, grpc.StatusCode.INTERNAL),
])
@pytest.mark.parametrize("streaming", [False, True])
def test_typed_errors_map_to_their_code(cls, code, streaming):
    def impl(request, context):
        raise cls("CreateContainer: config.image.image: must not be empty")

    context = RecordingContext()
    with pytest.raises(Aborted):
        if streaming:
            list(edge._streaming("RuntimeService.X", impl)(None, context))
        else:
            edge._unary("RuntimeService.X", impl)(None, context)
    assert context.code == code
    assert context.details == "CreateContainer: config.image.image: must not be empty"


def test_unexpected_exception_is_internal_and_logged(caplog):
    def impl(request, context):
        raise KeyError("boom")

    context = RecordingContext()
    with pytest.raises(Aborted):
        edge._unary("RuntimeService.Status", impl)(None, context)
    assert context.code == grpc.StatusCode.INTERNAL
    assert "RuntimeService.Status" in context.details and "KeyError" in context.details
    assert any(r.exc_info for r in caplog.records), "traceback must be logged"


def test_missing_implementation_answers_unimplemented_naming_the_rpc():
    context = RecordingContext()
    with pytest.raises(Aborted):
        edge._unary("RuntimeService.CreateContainer", None)(None, context)
    assert context.code == grpc.StatusCode.UNIMPLEMENTED
    assert "RuntimeService.CreateContainer" in context.details


def test_successful_call_returns_the_response():
    context = RecordingContext()
    assert edge._unary("S.M", lambda req, ctx: req * 2)(21, context) == 42
    assert list(edge._streaming("S.N", lambda req, ctx: iter([req, req]))(1, context)) == [1, 1]
    assert context.code is None


def test_service_handler_rejects_unknown_method_names():
    with pytest.raises(ValueError, match="NoSuchRpc"):
        edge.service_handler("RuntimeService", {"NoSuchRpc": lambda r, c: None})


@pytest.mark.parametrize("err, builtin", [
    (errno.ENOENT, FileNotFoundError),
    (errno.EEXIST, FileExistsError),
    (errno.EPERM, PermissionError),
    (errno.ESRCH, ProcessLookupError),
    (errno.ENOTDIR, NotADirectoryError),
])
def test_native_error_is_also_the_builtin_oserror(err, builtin):
    exc = errors.native_error(err, "mount `/x`")
    assert isinstance(exc, errors.NativeError)
    assert isinstance(exc, builtin)
    assert exc.errno == err
    assert exc.strerror.startswith("mount `/x`: ")


def test_native_error_without_builtin_subclass():
    exc = errors.native_error(errno.EINVAL, "setns `/proc/1/ns/net`")
    assert type(exc) is errors.NativeError
    assert exc.errno == errno.EINVAL

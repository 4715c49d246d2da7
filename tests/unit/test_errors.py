"""The error contract: native errno mapping and typed error -> gRPC status at the edge."""
from __future__ import annotations

import errno
import inspect

import grpc
import pytest

from crio_native import errors
from crio_native.cri import edge
from crio_native.cri.wire import StatusCode
from crio_native.image import errors as image_errors


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


# Every typed error class of errors.py and image/errors.py, with the code the
# CRI edge answers it with.
CODES = {
    errors.CrioNativeError: StatusCode.INTERNAL,
    errors.NotFound: StatusCode.NOT_FOUND,
    errors.AlreadyExists: StatusCode.ALREADY_EXISTS,
    errors.InvalidArgument: StatusCode.INVALID_ARGUMENT,
    errors.FailedPrecondition: StatusCode.FAILED_PRECONDITION,
    errors.ResourceExhausted: StatusCode.RESOURCE_EXHAUSTED,
    errors.DeadlineExceeded: StatusCode.DEADLINE_EXCEEDED,
    errors.Unavailable: StatusCode.UNAVAILABLE,
    errors.Unimplemented: StatusCode.UNIMPLEMENTED,
    errors.Unauthenticated: StatusCode.UNAUTHENTICATED,
    errors.Cancelled: StatusCode.CANCELLED,
    errors.Internal: StatusCode.INTERNAL,
    image_errors.RegistryUnavailable: StatusCode.UNAVAILABLE,
    image_errors.PullTimeout: StatusCode.DEADLINE_EXCEEDED,
    image_errors.ManifestUnknown: StatusCode.NOT_FOUND,
    image_errors.Unauthenticated: StatusCode.UNAUTHENTICATED,
    image_errors.ContentMismatch: StatusCode.FAILED_PRECONDITION,
    image_errors.UnsafeLayer: StatusCode.FAILED_PRECONDITION,
    image_errors.PolicyRejected: StatusCode.FAILED_PRECONDITION,
}


def _id(value) -> str:
    if isinstance(value, StatusCode):
        return value.name
    return f"{value.__module__.removeprefix('crio_native.')}.{value.__qualname__}"


def _typed_error_classes(module) -> set[type]:
    return {cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, errors.CrioNativeError) and cls.__module__ == module.__name__}


def test_every_kind_has_a_status_code():
    assert set(edge.STATUS_CODES) == set(errors.ErrorKind)
    assert all(isinstance(code, StatusCode) for code in edge.STATUS_CODES.values())


def test_our_status_codes_are_grpc_s():
    """cri/wire's codes go on the wire as numbers: they must be gRPC's."""
    assert {c.name: c.value for c in StatusCode} == {
        c.name: c.value[0] for c in grpc.StatusCode}


def test_every_typed_error_class_is_in_the_table():
    assert _typed_error_classes(errors) | _typed_error_classes(image_errors) == set(CODES)


@pytest.mark.parametrize("cls, code", CODES.items(), ids=_id)
def test_status_code_of_typed_error(cls, code):
    assert edge.status_code_of(cls("x")) == code


def test_status_code_of_other_exceptions_is_internal():
    assert edge.status_code_of(KeyError("x")) == StatusCode.INTERNAL


def test_image_unauthenticated_is_the_base_kind():
    assert issubclass(image_errors.Unauthenticated, errors.Unauthenticated)


@pytest.mark.parametrize("cls, code", CODES.items(), ids=_id)
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
    assert context.code == StatusCode.INTERNAL
    assert "RuntimeService.Status" in context.details and "KeyError" in context.details
    assert any(r.exc_info for r in caplog.records), "traceback must be logged"


def test_missing_implementation_answers_unimplemented_naming_the_rpc():
    context = RecordingContext()
    with pytest.raises(Aborted):
        edge._unary("RuntimeService.CreateContainer", None)(None, context)
    assert context.code == StatusCode.UNIMPLEMENTED
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

"""Why an image pull failed, as one of a few fixed words: the `reason` label
of container_runtime_crio_native_image_pulls_failures_total.  The image name
and the error text stay out of the label (they would make a series per
image and per message)."""
from __future__ import annotations

from crio_native.errors import CrioNativeError, ErrorKind
from crio_native.image import errors as image_errors

# most specific first: the pull's own error classes, then the error kinds
_BY_CLASS: tuple[tuple[type[BaseException], str], ...] = (
    (image_errors.ManifestUnknown, "not_found"),
    (image_errors.Unauthenticated, "unauthenticated"),
    (image_errors.PullTimeout, "timeout"),
    (image_errors.RegistryUnavailable, "registry_unavailable"),
    (image_errors.PolicyRejected, "policy_rejected"),
    (image_errors.UnsafeLayer, "unsafe_layer"),
    (image_errors.ContentMismatch, "content_mismatch"),
)
_BY_KIND = {
    ErrorKind.NOT_FOUND: "not_found",
    ErrorKind.UNAUTHENTICATED: "unauthenticated",
    ErrorKind.DEADLINE_EXCEEDED: "timeout",
    ErrorKind.UNAVAILABLE: "registry_unavailable",
    ErrorKind.RESOURCE_EXHAUSTED: "no_space",
    ErrorKind.INVALID_ARGUMENT: "invalid",
    ErrorKind.FAILED_PRECONDITION: "failed_precondition",
}
REASONS = tuple(sorted({*(r for _, r in _BY_CLASS), *_BY_KIND.values(), "other"}))


def pull_failure_reason(exc: BaseException) -> str:
    """The label value for a pull that raised `exc`."""
    for cls, reason in _BY_CLASS:
        if isinstance(exc, cls):
            return reason
    if isinstance(exc, CrioNativeError):
        return _BY_KIND.get(exc.kind, "other")
    return "other"

"""Pull and storage failures, as typed errors of crio_native.errors with the
gRPC code the edge answers with."""
from __future__ import annotations

import grpc

from crio_native.errors import (CrioNativeError, DeadlineExceeded, FailedPrecondition, NotFound,
                                Unavailable)


class RegistryUnavailable(Unavailable):
    """The registry could not be reached or kept failing."""


class PullTimeout(DeadlineExceeded):
    """No bytes arrived for image.pull_progress_timeout."""


class ManifestUnknown(NotFound):
    """The registry has no such tag or digest."""


class Unauthenticated(CrioNativeError):
    """The registry refused our credentials (or wanted some)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class ContentMismatch(FailedPrecondition):
    """A blob, manifest or layer did not match its digest, size or diffID."""


class UnsafeLayer(FailedPrecondition):
    """A layer tried to escape its directory or otherwise could not be unpacked safely."""


class PolicyRejected(FailedPrecondition):
    """The signature policy (policy.json) refuses this image."""

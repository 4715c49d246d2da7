"""Pull and storage failures, as typed errors of crio_native.errors; each
inherits its kind, which the edge (cri/edge.py) maps to a gRPC code."""
from __future__ import annotations

from crio_native import errors
from crio_native.errors import DeadlineExceeded, FailedPrecondition, NotFound, Unavailable


class RegistryUnavailable(Unavailable):
    """The registry could not be reached or kept failing."""


class PullTimeout(DeadlineExceeded):
    """No bytes arrived for image.pull_progress_timeout."""


class ManifestUnknown(NotFound):
    """The registry has no such tag or digest."""


class Unauthenticated(errors.Unauthenticated):
    """The registry refused our credentials (or wanted some)."""


class ContentMismatch(FailedPrecondition):
    """A blob, manifest or layer did not match its digest, size or diffID."""


class UnsafeLayer(FailedPrecondition):
    """A layer tried to escape its directory or otherwise could not be unpacked safely."""


class PolicyRejected(FailedPrecondition):
    """The signature policy (policy.json) refuses this image."""

"""A small gRPC server over `h2` for the CRI socket (docs/memory.md, "The
gRPC server"): unary and server-streaming calls, no grpc import."""
from crio_native.cri.wire.call import Aborted, Call, Method, Service
from crio_native.cri.wire.server import Server
from crio_native.cri.wire.status import StatusCode

__all__ = ["Aborted", "Call", "Method", "Server", "Service", "StatusCode"]

"""The gRPC edge: CRI RuntimeService and ImageService over a unix socket."""

"""Runtime handlers: the built-in runtime (builtin/) and, later, OCI CLIs."""

"""The built-in OCI runtime: bundle -> flat launch plan (Python) -> C walks
the plan between clone and execve (crio_native._native.launch)."""

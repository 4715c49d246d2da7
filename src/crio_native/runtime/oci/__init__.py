"""The `oci` runtime handler: an OCI runtime CLI (runc, crun) driven through
its command line.  handler.py is the RuntimeHandler; command.py runs the
runtime's commands, for it and for the exec paths in exec.py; messages.py
reads the runtime's own messages; cgroups.py says where runc will put the
container's cgroup."""

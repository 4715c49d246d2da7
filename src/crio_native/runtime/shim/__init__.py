"""Shim v2 runtimes (kata and the like): a ttrpc client, the task service
client, the shim's lifecycle and the `vm` runtime handler."""

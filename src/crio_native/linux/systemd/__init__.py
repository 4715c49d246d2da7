"""The systemd cgroup driver: unit names and the cgroup paths systemd gives
them (names.py), OCI resources as unit properties (properties.py), and the
manager's D-Bus API (bus.py) with the scopes the runtime starts through it
(scope.py)."""

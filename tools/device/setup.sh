#!/usr/bin/env bash
# On the device machine: build crio-native into .venv from .device/ (made by
# bundle.sh on a Debian machine), with no package registry.  Then:
#   source tools/device/env.sh && .venv/bin/python -m pytest ...
set -euo pipefail
cd "$(dirname "$0")/../.."
dev=$PWD/.device
mkdir -p "$dev/lib"
# Link-time names for the runtime libraries Ubuntu ships without -dev packages.
ln -sf /lib/x86_64-linux-gnu/libseccomp.so.2 "$dev/lib/libseccomp.so"
ln -sf /lib/x86_64-linux-gnu/libselinux.so.1 "$dev/lib/libselinux.so"
python3 -m venv .venv
.venv/bin/pip install -q --no-index --find-links "$dev/wheels" \
    setuptools wheel Cython grpcio-tools grpcio protobuf tomli_w pytest urllib3 zstandard \
    h11 wsproto
# The device is a throw-away machine: put Debian's binaries where the tests and
# the default config expect them, without replacing anything already there.
place() { [ -e "$2" ] || install -D -m 0755 "$1" "$2"; }
place "$dev/bin/busybox" /bin/busybox
place "$dev/bin/runc" /usr/sbin/runc
place "$dev/bin/crun" /usr/bin/crun
# conmon and ip are wrappers around their own libraries: linked, not copied
link() { [ -e "$2" ] || ln -s "$1" "$2"; }
link "$dev/bin/conmon" /usr/bin/conmon
link "$dev/bin/ip" /usr/bin/ip
[ -e /usr/local/lib/libyajl.so.2 ] || { install -m 0644 "$dev/lib/libyajl.so.2" /usr/local/lib/; ldconfig; }
C_INCLUDE_PATH="$dev/include" LIBRARY_PATH="$dev/lib" \
    .venv/bin/pip install -q --no-build-isolation --no-index -e .

#!/usr/bin/env bash
# Builds .device/: what the lent device machine (Ubuntu 24.04, Python 3.12,
# pure cgroup v2, no package registries) needs to build and test crio-native:
# cp312 wheels, the libseccomp/libselinux headers, and Debian's busybox, runc,
# crun and conmon binaries with the one library Ubuntu lacks.  Carry it with
# the device tool (carry: [".device"]) and run tools/device/setup.sh there.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=.device
rm -rf "$out"
mkdir -p "$out"/{wheels,include/selinux,bin,lib}

.venv/bin/python -m pip download -q --disable-pip-version-check --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform any \
    -d "$out/wheels" \
    "setuptools>=77" wheel "Cython>=3.0" "grpcio-tools>=1.60" "grpcio>=1.60" \
    "protobuf>=4.25" "tomli_w>=1.0" "pytest>=7" "urllib3>=2.0" "zstandard>=0.22" \
    "h11>=0.14" "wsproto>=1.2" \
    2> >(grep -v '^WARNING: Location' >&2)

cp /usr/include/seccomp.h /usr/include/seccomp-syscalls.h "$out/include/"
cp /usr/include/selinux/*.h "$out/include/selinux/"
cp /bin/busybox /usr/sbin/runc /usr/bin/crun "$out/bin/"
cp -L /lib/x86_64-linux-gnu/libyajl.so.2 "$out/lib/"
# conmon (the monitor RSS peer) and iproute2's ip (the network stats tests)
# need libraries the device's image may lack: each gets its own copies in
# libexec/, and a wrapper in bin/ points only that program at them.
mkdir -p "$out/libexec/lib"
for prog in /usr/bin/conmon /bin/ip; do
    name=$(basename "$prog")
    cp "$prog" "$out/libexec/$name"
    ldd "$prog" | awk '/=> \// {print $3}' | grep -v -e '/libc\.so' -e '/libm\.so' \
        | xargs -r cp -L -t "$out/libexec/lib/"
    printf '#!/bin/sh\nd=$(dirname "$(readlink -f "$0")")/../libexec\nLD_LIBRARY_PATH="$d/lib" exec "$d/%s" "$@"\n' \
        "$name" > "$out/bin/$name"
    chmod 0755 "$out/bin/$name"
done
du -sh "$out"

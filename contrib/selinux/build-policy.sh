#!/bin/sh
# Build a binary SELinux policy (policy.33) = the host's installed policy
# store (Debian's selinux-policy-default) + contrib/selinux/crio_native.cil,
# into OUTDIR (default build/selinux), for vmrun.sh --selinux-policy.
#
# The module goes into a *copy* of /var/lib/selinux and /etc/selinux: the
# host's own store is never touched (the host kernel does not run SELinux).
# Exit 3 (and a line on stderr) when the host lacks the tools or the policy.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-build/selinux}
module="$here/crio_native.cil"

if ! command -v semodule >/dev/null 2>&1; then
    echo "build-policy.sh: no semodule (apt-get install policycoreutils)" >&2
    exit 3
fi
stype=$(sed -n 's/^SELINUXTYPE=//p' /etc/selinux/config 2>/dev/null || true)
stype=${stype:-default}
if [ ! -d "/var/lib/selinux/$stype" ]; then
    echo "build-policy.sh: no policy store /var/lib/selinux/$stype" \
         "(apt-get install selinux-policy-default)" >&2
    exit 3
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/crn-sepolicy.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM
mkdir -p "$root/var/lib" "$root/etc" "$out"
cp -a /var/lib/selinux "$root/var/lib/"
cp -a /etc/selinux "$root/etc/"
# libsemanage warns about users of the copied store with no passwd entry
# (sddm, ...): noise here, so only a failure shows its messages.
if ! semodule -p "$root" -i "$module" 2>"$root/semodule.err"; then
    cat "$root/semodule.err" >&2
    exit 1
fi
cp "$root/etc/selinux/$stype/policy/policy.33" "$out/policy.33.tmp"
mv "$out/policy.33.tmp" "$out/policy.33"
echo "build-policy.sh: $out/policy.33 (with $(basename "$module"))"

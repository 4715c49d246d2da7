# Source on the device after setup.sh: Debian's runtimes and busybox first in PATH.
dev=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.device
export PATH="$dev/bin:$PATH"
export LD_LIBRARY_PATH="$dev/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

"""The OCI runtime binary run from a sealed in-memory copy of itself.

runc (1.1) guards the host's binary against a container overwriting it
through /proc/self/exe (CVE-2019-5736) in every `runc init`, the process
that joins or makes the container: unless /proc/self/exe is already a
memfd carrying exactly the seals it would set itself
(libcontainer/nsenter/cloned_binary.c, is_self_cloned), it bind-mounts
the binary read-only in its state dir, remounts it, opens it, detaches
the mount and executes itself a second time from that handle.  On every
`runc exec` that is two mounts, a lazy unmount (the host's mount table
changes three times) and a second execve of an 8.7 MB binary: about 1
ms of each exec on this project's 2-core host (kernel 6.18), more under
load (docs/containers.md, "The runc handler's ExecSync back to back").

runc's own comment allows the shortcut: "you cannot write to a sealed
memfd no matter what (so sharing it isn't a bad thing -- and an admin
could bind-mount a sealed memfd to /usr/bin/runc to allow re-use)".  So
the handler copies the binary once into a memfd, seals it against any
write, shrink or grow (and against further seals) and runs `exec` from
it, through /proc/<our pid>/fd/N: runc init then finds itself cloned and
goes on.  Same bytes, same command line (argv[0] stays the configured
path), same protection; runc versions that check differently clone as
before.  The copy is remade when the file changes (device, inode, size,
mtime or ctime: one stat per call), and an old copy is closed only once
no spawn still uses its path.  Only ELF files are copied (a script
wrapper gains nothing and may look at $0); where memfds cannot be made
or sealed, or would not be executable (vm.memfd_noexec), the configured
path is used as before.  The copy costs its size in shared memory,
charged to the daemon's memory cgroup, once per binary."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from typing import Iterator

log = logging.getLogger(__name__)

# runc's RUNC_MEMFD_SEALS: it takes the copy as its own only with exactly these.
RUNC_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_MFD_EXEC = 0x0010          # Linux 6.3: executable even under vm.memfd_noexec=1
_ELF_MAGIC = b"\x7fELF"

Key = tuple[int, int, int, int, int]


def _key_of(st: os.stat_result) -> Key:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def sealed_copy(path: str, name: str) -> int | None:
    """A memfd holding the bytes of the ELF file at `path`, sealed with
    RUNC_SEALS (close-on-exec); None when `path` is no ELF file or no such
    copy can be made here (why is logged)."""
    try:
        src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        log.debug("no sealed copy of %s: %s", path, e)
        return None
    fd = -1
    try:
        if os.pread(src, 4, 0) != _ELF_MAGIC:
            return None
        fd = _memfd(name)
        size = os.fstat(src).st_size
        copied = 0
        while copied < size:
            n = os.sendfile(fd, src, copied, size - copied)
            if n == 0:
                raise OSError(f"{path} shrank while being copied")
            copied += n
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, RUNC_SEALS)
        if fcntl.fcntl(fd, fcntl.F_GET_SEALS) != RUNC_SEALS or \
                not os.access(f"/proc/self/fd/{fd}", os.X_OK):
            raise OSError("the copy is not executable with exactly runc's seals "
                          "(vm.memfd_noexec?)")
        result, fd = fd, -1
        return result
    except OSError as e:
        log.info("runtime %s runs from its path: no sealed in-memory copy: %s", path, e)
        return None
    finally:
        os.close(src)
        if fd >= 0:
            os.close(fd)


def _memfd(name: str) -> int:
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        return os.memfd_create(name, flags | _MFD_EXEC)
    except OSError:       # EINVAL: a kernel before 6.3 knows no MFD_EXEC
        return os.memfd_create(name, flags)


class SealedBinary:
    """The executable to run for the file at `path`: a sealed copy of it
    (see the module's text), remade when the file changes."""

    def __init__(self, path: str):
        self.path = path
        self._lock = threading.Lock()
        self._key: Key | None = None
        self._fd: int | None = None          # the copy of the file as it is at _key
        self._users: dict[int, int] = {}     # fd -> spawns using its path now
        self._retired: set[int] = set()      # replaced copies, closed when unused

    @contextlib.contextmanager
    def executable(self) -> Iterator[str]:
        """The path to execve for `path`, valid until the block ends: spawn
        inside it (subprocess.Popen returns once the child has executed)."""
        try:
            key: Key | None = _key_of(os.stat(self.path))
        except OSError:
            key = None                # the spawn will say what is wrong
        with self._lock:
            if key is None:
                fd = None
            else:
                if key != self._key:
                    self._replace(key)
                fd = self._fd
            if fd is not None:
                self._users[fd] = self._users.get(fd, 0) + 1
        if fd is None:
            yield self.path
            return
        try:
            yield f"/proc/{os.getpid()}/fd/{fd}"
        finally:
            with self._lock:
                self._users[fd] -= 1
                if not self._users[fd]:
                    del self._users[fd]
                    if fd in self._retired:
                        self._retired.discard(fd)
                        os.close(fd)

    def _replace(self, key: Key) -> None:
        old = self._fd
        self._fd = sealed_copy(self.path, f"crio-native:{os.path.basename(self.path)}")
        self._key = key
        if old is not None:
            if self._users.get(old):
                self._retired.add(old)
            else:
                os.close(old)
        if self._fd is not None:
            log.debug("runtime %s runs from a sealed in-memory copy (fd %d)", self.path,
                      self._fd)


_shared: dict[str, SealedBinary] = {}
_shared_lock = threading.Lock()


def shared(path: str) -> SealedBinary:
    """The process's one SealedBinary for `path` (handlers of the same
    binary share its copy)."""
    with _shared_lock:
        sealed = _shared.get(path)
        if sealed is None:
            sealed = _shared[path] = SealedBinary(path)
        return sealed

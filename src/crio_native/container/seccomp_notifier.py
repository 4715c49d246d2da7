"""The seccomp notifier (CRI-O's `seccompNotifierAction` pod annotation):
the daemon is the seccomp agent of the containers that ask for it.

The container's profile is rewritten so that what it blocks notifies
(spec.seccomp.notifying_section) the agent socket at `listenerPath`, one per
container under <runroot>/seccomp.  Any runtime that implements listenerPath
connects there and hands over the notify fd with the container process state
(runtime/builtin/seccomp_listener.py for ours; runc >= 1.1 and crun >= 0.19
do the same), once for the init and once for each exec'd process.  Each
notification is answered with the errno the profile gave that syscall (the
workload sees what it would have seen), logged with the syscall's name and
counted; with the value "stop" the first one also stops the container, its
exit recorded with reason "seccomp killed" and the syscalls in the message.

One thread polls every listening socket and notify fd.  The fds live in the
daemon: after a restart the listening sockets are made again for the running
containers, but a process already running keeps a filter whose agent is gone
(the kernel then answers its notifying syscalls with ENOSYS)."""
from __future__ import annotations

import array
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import functools
import json
import logging
import os
import select
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from typing import TYPE_CHECKING, Any

from crio_native.errors import FailedPrecondition
from crio_native.logsetup import fields
from crio_native.runtime.builtin.seccomp_listener import SECCOMP_FD_NAME
from crio_native.spec import seccomp as seccomp_spec
from crio_native.state.files import atomic_write_json

if TYPE_CHECKING:
    from contextlib import ExitStack

    from crio_native.container.record import ContainerRecord
    from crio_native.spec.inputs import SpecBuild, SpecInputs

log = logging.getLogger(__name__)

# <linux/seccomp.h>: struct seccomp_notif {u64 id; u32 pid; u32 flags;
# struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6]}} and
# struct seccomp_notif_resp {u64 id; s64 val; s32 error; u32 flags}.
NOTIF = struct.Struct("=QIIiIQ6Q")
NOTIF_RESP = struct.Struct("=QqiI")


def _iowr(nr: int, size: int) -> int:
    return (3 << 30) | (size << 16) | (ord("!") << 8) | nr


NOTIF_RECV = _iowr(0, NOTIF.size)
# <linux/seccomp.h> (5.5): the answer lets the call go on in the kernel
FLAG_CONTINUE = 1
# an answer that continues the call rather than failing it (the recorder,
# and the audit of SCMP_ACT_LOG rules)
CONTINUE = -1
NOTIF_SEND = _iowr(1, NOTIF_RESP.size)
STATE_MAX = 64 * 1024
SUN_PATH_MAX = 107
KILLED_REASON = "seccomp killed"
KILLED_FILE = "seccomp-killed"     # in the container's directory: the exit's message


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2")
    lib.seccomp_syscall_resolve_num_arch.restype = ctypes.c_void_p
    lib.seccomp_syscall_resolve_num_arch.argtypes = [ctypes.c_uint32, ctypes.c_int]
    return lib


def syscall_name(arch: int, nr: int) -> str:
    """libseccomp's name of syscall `nr` on audit arch `arch` (0: native)."""
    ptr = _libseccomp().seccomp_syscall_resolve_num_arch(arch, nr)
    if not ptr:
        return f"syscall#{nr}"
    try:
        return ctypes.string_at(ptr).decode()
    finally:
        ctypes.CDLL(None).free(ctypes.c_void_p(ptr))


# a learning container notifies on every call: the name of each (arch, nr)
# is looked up once
_cached_name = functools.lru_cache(maxsize=4096)(syscall_name)


@functools.cache
def native_syscall_names() -> tuple[str, ...]:
    """Every syscall name this architecture has, as libseccomp knows them."""
    names = set()
    for nr in range(1024):
        name = syscall_name(0, nr)
        if not name.startswith("syscall#"):
            names.add(name)
    return tuple(sorted(names))


@dataclass
class _Watch:
    container_id: str
    stop: bool
    answers: dict[str, int]
    default_errno: int
    path: str
    sock: socket.socket
    fds: list[int] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    stopping: bool = False
    # "stop": the calls blocked while the stop runs (a second thread or
    # process, or the first call again: a signal or the freezer interrupts
    # the wait and the kernel restarts the syscall, which notifies anew),
    # answered only once it has ended: (our dup of the fd, id, answer)
    held: list[tuple[int, int, int]] = field(default_factory=list)
    stopped: bool = False
    # learn mode (container/seccomp_recorder.py): every call continues and
    # its name is kept here; on each hang-up `on_hangup` writes the profile
    recorded: set[str] | None = None
    # the audit stream (container/seccomp_audit.py): told of each call
    observe: Callable[[str], None] | None = None
    # no warning line of its own per call (the audit alone: it rate-limits)
    quiet: bool = False
    on_hangup: Callable[["_Watch"], None] | None = None

    def summary(self) -> str:
        return ", ".join(f"{n} ({c}x)" for n, c in sorted(self.counts.items()))


# (container id, message "Used forbidden syscalls: ...") -> stop it
OnStop = Callable[[str, str], None]


class SeccompNotifier:
    def __init__(self, directory: Path, on_stop: OnStop):
        self.directory = directory
        self.on_stop = on_stop
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None
        self._closed = False

    def path_for(self, container_id: str) -> str:
        return str(self.directory / container_id[:16])

    def listen(self, container_id: str, action: str, answers: dict[str, int],
               default_errno: int = errno.EPERM, **extra: Any) -> str:
        """Listen for `container_id`'s runtime; the socket's path."""
        path = self.path_for(container_id)
        if len(path) > SUN_PATH_MAX:
            raise FailedPrecondition(f"CreateContainer: seccomp notifier socket path {path} is "
                                     f"longer than {SUN_PATH_MAX} bytes (shorten --runroot)")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(path)
            os.chmod(path, 0o600)
            sock.listen(16)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        watch = _Watch(container_id, action == "stop", dict(answers), default_errno, path, sock,
                       **extra)
        with self._lock:
            self._start()
            old = self._watches.pop(container_id, None)
            self._watches[container_id] = watch
        if old is not None:
            self._close_watch(old)
        self._wake()
        log.info("seccomp notifier listening", extra=fields(id=container_id, action=action,
                                                             path=path))
        return path

    def sweep(self) -> None:
        """Start-up, after relisten: sockets of containers gone meanwhile."""
        with self._lock:
            live = {w.path for w in self._watches.values()}
        with contextlib.suppress(FileNotFoundError):
            for entry in self.directory.iterdir():
                if str(entry) not in live:
                    with contextlib.suppress(OSError):
                        entry.unlink()

    def watching(self, container_id: str) -> bool:
        with self._lock:
            return container_id in self._watches

    def forget(self, container_id: str) -> None:
        with self._lock:
            watch = self._watches.pop(container_id, None)
        if watch is not None:
            self._close_watch(watch)
            self._wake()
            self._hung_up(watch)

    def _hung_up(self, watch: _Watch) -> None:
        if watch.on_hangup is not None:
            try:
                watch.on_hangup(watch)
            except Exception:  # noqa: BLE001 - the agent thread goes on for the rest
                log.exception("seccomp notifier: after a hang-up",
                              extra=fields(id=watch.container_id))

    def close(self) -> None:
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
            self._closed = True
        for w in watches:
            self._close_watch(w, unlink=False)
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ---- the agent thread ----------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            self._thread = threading.Thread(target=self._run, name="seccomp-notifier",
                                            daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(OSError):
                os.write(self._wake_w, b"x")

    def _close_watch(self, watch: _Watch, unlink: bool = True) -> None:
        watch.sock.close()
        for fd in watch.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        watch.fds.clear()
        if unlink:
            with contextlib.suppress(OSError):
                os.unlink(watch.path)

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                socks = {w.sock.fileno(): w for w in self._watches.values()}
                notify = {fd: w for w in self._watches.values() for fd in w.fds}
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            for fd in (*socks, *notify):
                poller.register(fd, select.POLLIN)
            for fd, events in poller.poll():
                try:
                    if fd == self._wake_r:
                        with contextlib.suppress(OSError):
                            os.read(self._wake_r, 4096)
                    elif fd in socks:
                        self._accept(socks[fd])
                    elif fd in notify:
                        self._handle(notify[fd], fd, events)
                except Exception:  # noqa: BLE001 - one container's agent must not end the rest
                    log.exception("seccomp notifier")

    def _accept(self, watch: _Watch) -> None:
        try:
            conn, _ = watch.sock.accept()
        except (BlockingIOError, OSError):
            return
        with conn:
            fd = receive_notify_fd(conn)
        if fd is None:
            return
        with self._lock:
            if self._watches.get(watch.container_id) is watch:
                watch.fds.append(fd)
                return
        os.close(fd)

    def _handle(self, watch: _Watch, fd: int, events: int) -> None:
        if not events & select.POLLIN:
            # POLLHUP: no process uses this filter any more
            with self._lock:
                if fd in watch.fds:
                    watch.fds.remove(fd)
            os.close(fd)
            self._hung_up(watch)
            return
        buf = bytearray(NOTIF.size)
        try:
            fcntl.ioctl(fd, NOTIF_RECV, buf)
        except OSError as e:
            if e.errno == errno.ENOENT:      # the caller died meanwhile
                return
            raise
        notif_id, pid, _flags, nr, arch = NOTIF.unpack(buf)[:5]
        name = _cached_name(arch, nr)
        if watch.recorded is not None:
            watch.recorded.add(name)
            respond(fd, notif_id, CONTINUE)
            return
        answer = watch.answers.get(name, watch.default_errno)
        if watch.observe is not None:
            watch.observe(name)
        if answer == CONTINUE:
            respond(fd, notif_id, CONTINUE)
            return
        watch.counts[name] += 1
        if not watch.quiet:
            log.warning("seccomp blocked syscall '%s' in container %s", name, watch.container_id,
                        extra=fields(id=watch.container_id, syscall=name, pid=pid))
        if watch.stop:
            with self._lock:
                begin = not watch.stopping
                if watch.stopping and not watch.stopped:
                    # unanswered until the stop ends, as the first one
                    watch.held.append((os.dup(fd), notif_id, answer))
                    return
                watch.stopping = True
            if begin:
                # the call stays unanswered while the container is killed,
                # so the workload never runs past it; answered after the
                # stop in case the kill failed (an answer to a dead caller
                # is ENOENT)
                message = f"Used forbidden syscalls: {watch.summary()}"
                threading.Thread(target=self._stop_then_answer,
                                 args=(watch, message, os.dup(fd), notif_id, answer),
                                 name="seccomp-stop", daemon=True).start()
                return
        respond(fd, notif_id, answer)

    def _stop_then_answer(self, watch: _Watch, message: str, fd: int, notif_id: int,
                          answer: int) -> None:
        try:
            self.on_stop(watch.container_id, message)
        finally:
            with self._lock:
                watch.stopped = True
                held, watch.held = watch.held, []
            for held_fd, held_id, held_answer in [(fd, notif_id, answer), *held]:
                try:
                    respond(held_fd, held_id, held_answer)
                except OSError as e:
                    log.debug("seccomp notifier: answering after the stop: %s", e)
                finally:
                    os.close(held_fd)


def respond(fd: int, notif_id: int, errno_value: int) -> None:
    """Answer notification `notif_id`: the syscall fails with `errno_value`
    (CONTINUE: it goes on as if no filter had stopped it)."""
    resp = NOTIF_RESP.pack(notif_id, 0, 0, FLAG_CONTINUE) if errno_value == CONTINUE \
        else NOTIF_RESP.pack(notif_id, 0, -errno_value, 0)
    try:
        fcntl.ioctl(fd, NOTIF_SEND, bytearray(resp))
    except OSError as e:
        if e.errno != errno.ENOENT:      # the caller is gone
            raise


def receive_notify_fd(conn: socket.socket) -> int | None:
    """The notify fd a runtime sends with its container process state (the
    fd named "seccompFd"); any other fd sent is closed."""
    conn.settimeout(5)
    data, fds = b"", array.array("i")
    state = None
    try:
        while len(data) < STATE_MAX:
            msg, anc, _flags, _addr = conn.recvmsg(STATE_MAX, socket.CMSG_SPACE(16 * 4))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
            if not msg:
                break
            data += msg
            try:
                state = json.loads(data)
                break
            except ValueError:
                continue
    except OSError as e:
        log.warning("seccomp notifier: reading the container process state: %s", e)
    names = state.get("fds") if isinstance(state, dict) else None
    index = names.index(SECCOMP_FD_NAME) \
        if isinstance(names, list) and SECCOMP_FD_NAME in names else -1
    keep = fds[index] if 0 <= index < len(fds) else None
    for i, fd in enumerate(fds):
        if i != index:
            os.close(fd)
    if keep is None:
        log.warning("seccomp notifier: a runtime connected without a seccomp fd")
    return keep



# listenerMetadata of a profile the daemon serves: says what to do again
# after a restart (the agent is told it too, and ignores it).
METADATA_PREFIX = "crio-native-notifier:"


# the listenerMetadata action of a container only the audit stream watches
AUDIT_ACTION = "audit"


def attach(notifier: SeccompNotifier, inputs: SpecInputs, build: SpecBuild,
           undo: ExitStack) -> None:
    """CreateContainer: where the pod asks for the notifier (and its handler
    allows it), or runtime.seccomp_audit is on, the container's profile
    notifies the daemon's agent; the recorder's learn mode comes first."""
    from crio_native.container import seccomp_audit, seccomp_recorder
    if seccomp_recorder.attach(notifier, inputs, build, undo, list(native_syscall_names())):
        return
    action = seccomp_spec.notifier_action(inputs)
    audit = inputs.daemon.runtime.seccomp_audit
    section = build.linux.get("seccomp")
    if action is None and not audit:
        return
    if not section:
        if action is not None:
            log.info("seccomp notifier asked for a container without a seccomp profile: "
                     "nothing to notify", extra=fields(id=inputs.container_id))
        return
    path = notifier.path_for(inputs.container_id)
    names = list(native_syscall_names())
    notifying, answers = seccomp_spec.notifying_section(section, path, names)
    extra: dict[str, Any] = {}
    if audit:
        notifying = seccomp_audit.with_logged(notifying, answers, names, CONTINUE)
        auditor = seccomp_audit.auditor_from_spec(inputs.container_id, build.spec,
                                                  inputs.image_id)
        extra = {"observe": auditor.observe, "quiet": action is None,
                 "on_hangup": lambda _w: auditor.close()}
        # the answers, for a restarted daemon's agent (relisten)
        build.spec.setdefault("annotations", {})[seccomp_audit.ANSWERS_ANNOTATION] = \
            seccomp_audit.encode_answers(answers)
    rules = notifying.get("syscalls") or []
    if action is None and not any(r.get("action") == "SCMP_ACT_NOTIFY" for r in rules):
        return     # nothing refused or logged: no agent needed
    notifying["listenerMetadata"] = METADATA_PREFIX + (action or AUDIT_ACTION)
    default = section.get("defaultErrnoRet")
    notifier.listen(inputs.container_id, action or AUDIT_ACTION, answers,
                    default if isinstance(default, int) else errno.EPERM, **extra)
    undo.callback(notifier.forget, inputs.container_id)
    build.linux["seccomp"] = notifying


def relisten(notifier: SeccompNotifier, container_id: str, spec: dict[str, Any]) -> None:
    """Start-up: listen again for a running container's later execs."""
    section = (spec.get("linux") or {}).get("seccomp") or {}
    metadata = section.get("listenerMetadata") or ""
    if section.get("listenerPath") != notifier.path_for(container_id) \
            or not metadata.startswith(METADATA_PREFIX):
        return
    default = section.get("defaultErrnoRet")
    action = metadata.removeprefix(METADATA_PREFIX)
    extra: dict[str, Any] = {}
    answers: dict[str, int] = {}
    fallback = default if isinstance(default, int) else errno.EPERM
    from crio_native.container import seccomp_audit
    if action == AUDIT_ACTION:
        extra = {"observe": seccomp_audit.auditor_from_spec(container_id, spec).observe,
                 "quiet": True}
    saved = (spec.get("annotations") or {}).get(seccomp_audit.ANSWERS_ANNOTATION)
    if saved:
        answers, fallback = seccomp_audit.decode_answers(saved, fallback)
    try:
        notifier.listen(container_id, action, answers, fallback, **extra)
    except (OSError, FailedPrecondition) as e:
        log.error("seccomp notifier: cannot listen again", extra=fields(id=container_id,
                                                                          error=str(e)))


def mark_killed(record: ContainerRecord, message: str) -> None:
    """Before the stop: the exit, whenever it is recorded, says why."""
    atomic_write_json(Path(record.directory) / KILLED_FILE, {"message": message})


def fold_killed(record: ContainerRecord) -> None:
    try:
        with open(Path(record.directory) / KILLED_FILE, "rb") as f:
            message = json.loads(f.read()).get("message", "")
    except (OSError, ValueError):
        return
    record.reason, record.message = KILLED_REASON, str(message)

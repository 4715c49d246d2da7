# cython: language_level=3
"""Launch a container process from a serialized plan (src/_native/plan.h).

Thin wrapper over src/_native/launch.c: the plan bytes are built and
validated by crio_native.runtime.builtin.plan; here they are only handed to C
with the GIL released."""
import os

from crio_native._native.includes.error cimport crn_error, crn_error_clear
from crio_native._native.includes cimport launch as c


cdef object _error(crn_error *e, int stage):
    from crio_native.errors import native_error
    exc = native_error(e.err, e.msg.decode("utf-8", "replace"))
    exc.stage = stage_name(stage)
    return exc


def stage_name(int stage):
    """Name of a child step (enum crn_stage), as attached to launch errors."""
    return c.crn_stage_name(stage).decode()


def validate(bytes plan):
    """Check a plan's framing and fields the way crn_launch will."""
    cdef crn_error err
    crn_error_clear(&err)
    if c.crn_plan_validate(<const char *>plan, len(plan), &err) < 0:
        raise _error(&err, 1)


cdef int _run_hooks(void *ctx, int pid, crn_error *err) noexcept nogil:
    """Called by crn_launch's parent side while the child waits: runs the
    Python hook callback with the GIL; its exception is kept for launch()."""
    with gil:
        holder = <list>ctx
        try:
            holder[0](pid)
            return 0
        except BaseException as e:
            holder[1] = e
            err.err = 125  # ECANCELED
            return -1


def launch(bytes plan, stdio=(-1, -1, -1), on_hooks=None, console=False, launcher=None):
    """Clone the container process and run it up to its start barrier.

    With `launcher` (the path of crio-native-launch) the clone is done by
    that small executable, spawned without copying this process, and the
    process is still our child; without it, this process clones itself,
    which costs in proportion to its memory.

    `on_hooks(pid)` runs while the child waits before pivot_root (plans with
    a HOOK_PAUSE record); an exception from it fails the launch and is
    re-raised here.  Returns (pid, pidfd); the caller owns the pidfd.  With
    `console` (plans with a CONSOLE record) it returns (pid, pidfd,
    master): the pty master the child made, also the caller's.  A failure
    raises a NativeError whose `stage` names the child step."""
    cdef crn_error err
    cdef c.crn_launch_result res
    cdef int fds[3]
    cdef const char *buf = plan
    cdef size_t n = len(plan)
    cdef int rc
    cdef list holder = [on_hooks, None]
    cdef c.crn_hook_fn fn = NULL
    cdef bytes blauncher = os.fsencode(launcher) if launcher is not None else None
    cdef const char *claunch = NULL
    if blauncher is not None:
        claunch = blauncher
    if on_hooks is not None:
        fn = _run_hooks
    for i in range(3):
        fds[i] = stdio[i]
    crn_error_clear(&err)
    with nogil:
        if claunch != NULL:
            rc = c.crn_launch_spawn(claunch, buf, n, fds, fn, <void *>holder, &res, &err)
        else:
            rc = c.crn_launch(buf, n, fds, fn, <void *>holder, &res, &err)
    if rc < 0:
        if holder[1] is not None:
            raise holder[1]
        raise _error(&err, res.stage)
    if console:
        return res.pid, res.pidfd, res.console_fd
    if res.console_fd >= 0:
        os.close(res.console_fd)
    return res.pid, res.pidfd


def release(fifo_path):
    """Let a created container run: write one byte to its start fifo."""
    cdef crn_error err
    cdef bytes bpath = os.fsencode(fifo_path)
    cdef const char *cpath = bpath
    cdef int rc
    crn_error_clear(&err)
    with nogil:
        rc = c.crn_launch_release(cpath, &err)
    if rc < 0:
        raise _error(&err, 0)

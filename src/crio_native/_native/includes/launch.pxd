from crio_native._native.includes.error cimport crn_error

cdef extern from "launch.h" nogil:
    ctypedef struct crn_launch_result:
        int pid
        int pidfd
        int stage
        int console_fd
    ctypedef int (*crn_hook_fn)(void *ctx, int pid, crn_error *err) noexcept nogil
    int crn_launch(const void *plan, size_t len, const int *stdio, crn_hook_fn on_hooks,
                   void *ctx, crn_launch_result *res, crn_error *err)
    int crn_launch_spawn(const char *launcher, const void *plan, size_t len, const int *stdio,
                         crn_hook_fn on_hooks, void *ctx, crn_launch_result *res,
                         crn_error *err)
    int crn_launch_release(const char *fifo_path, crn_error *err)
    const char *crn_stage_name(int stage)

cdef extern from "plan.h" nogil:
    int crn_plan_validate(const void *buf, size_t len, crn_error *err)

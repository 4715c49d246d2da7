from crio_native._native.includes.error cimport crn_error

cdef extern from "ns.h" nogil:
    int crn_ns_unshare(int flags, crn_error *err)
    int crn_ns_join(const char *path, int nstype, crn_error *err)
    int crn_ns_pin(const char *ns_path, const char *pin_path, crn_error *err)
    int crn_ns_unpin(const char *pin_path, crn_error *err)
    int crn_ns_create_pinned(const char *const *names, const char *const *paths, int count,
                             crn_error *err)
    int crn_ns_create_pinned_userns(const char *const *names, const char *const *paths,
                                    int count, const char *uid_map, const char *gid_map,
                                    crn_error *err)

from crio_native._native.includes.error cimport crn_error

cdef extern from "mnt.h" nogil:
    int crn_mnt_mount(const char *source, const char *target, const char *fstype,
                      unsigned long flags, const char *data, crn_error *err)
    int crn_mnt_unmount(const char *target, crn_error *err)
    int crn_mnt_idmapped_tree(const char *path, const char *userns_path, int recursive,
                              crn_error *err)

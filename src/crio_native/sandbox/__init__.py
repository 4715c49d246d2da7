"""Pod sandboxes: namespaces pinned without a pause process, CNI networking,
pod files (hostname, resolv.conf, hosts), /dev/shm, records on disk."""

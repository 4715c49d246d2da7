"""On-disk image storage under <root>/storage: blobs by digest, layers
unpacked once per chain ID, and image records."""

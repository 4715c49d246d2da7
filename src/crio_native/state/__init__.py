"""Records on disk: written crash-safely, read back after a restart."""

"""Repository mirroring: the upstream-registry client and the sync engine."""

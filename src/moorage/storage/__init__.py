"""Byte storage: one StorageDriver protocol, filesystem and S3 implementations."""

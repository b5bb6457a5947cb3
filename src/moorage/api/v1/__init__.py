"""Quay-compatible management API under /api/v1."""

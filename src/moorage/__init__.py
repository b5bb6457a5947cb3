"""Moorage: a container registry with Quay-compatible repository mirroring."""

__version__ = "0.1.0"

"""Conformance tests: the OCI Distribution Specification v1.1, endpoint by endpoint."""

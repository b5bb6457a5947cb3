"""Benchmarks of Moorage against Debian's docker-registry (CNCF distribution), on one machine.

Run ``python -m bench.registry_bench --help``; see docs/performance.md for the results.
"""

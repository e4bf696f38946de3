"""Benchmarks (request counts, latency, scale): `make bench`. Never timed tests."""

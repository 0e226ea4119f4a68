"""Benchmarks: they measure, they are not tests. `make bench` runs them."""

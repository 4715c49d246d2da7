"""Benchmarks run side by side with their peers; `make bench` runs them all."""

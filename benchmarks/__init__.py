"""Benchmarks: every figure a ratio against a floor measured in the same run (`make bench`, benchmarks/run.py)."""

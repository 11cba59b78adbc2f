"""Benchmarks: each prints a table and writes JSON (and plots where useful) under ``bench-results/``."""

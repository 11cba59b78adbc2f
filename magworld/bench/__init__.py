"""Benchmarks: each prints a table and writes JSON (and plots where useful) under ``bench-results/``."""

from .policies import PolicySpec, known_policies, make_policy, register_policy

__all__ = ["PolicySpec", "known_policies", "make_policy", "register_policy"]

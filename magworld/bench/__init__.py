"""Benchmarks: each prints a table and writes JSON (and plots where useful) to its ``out_dir``: ``runs/bench/...``
(git-ignored) by default; the committed results under ``bench-results/`` are reproduced with an explicit ``out_dir``."""

from .policies import PolicySpec, known_policies, make_policy, register_policy

__all__ = ["PolicySpec", "known_policies", "make_policy", "register_policy"]

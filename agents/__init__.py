"""Agents for MAGWorld-v0: scripted baselines (``agents.baselines``); light to import (no RL libraries)."""

from .baselines import BASELINES, CoverageAgent, LoopExplorer, RandomAgent, SweepAgent, make_baseline

__all__ = ["BASELINES", "CoverageAgent", "LoopExplorer", "RandomAgent", "SweepAgent", "make_baseline"]

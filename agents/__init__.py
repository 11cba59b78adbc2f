"""Agents for MAGWorld-v0: scripted baselines (``magworld.agents.baselines``); light to import (no RL libraries)."""

from .baselines import BASELINES, Agent, CoverageAgent, LoopExplorer, RandomAgent, SweepAgent, make_baseline

__all__ = ["Agent", "BASELINES", "CoverageAgent", "LoopExplorer", "RandomAgent", "SweepAgent", "make_baseline"]

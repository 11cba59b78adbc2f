"""Agents for MAGWorld-v1: the scripted baselines (light to import, no RL libraries); imports ``magworld.envs`` and
the library only."""

from .baselines import BASELINES, Agent, CoverageAgent, LoopExplorer, RandomAgent, SweepAgent, make_baseline

__all__ = ["Agent", "BASELINES", "CoverageAgent", "LoopExplorer", "RandomAgent", "SweepAgent", "make_baseline"]

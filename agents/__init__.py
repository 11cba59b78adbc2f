"""Agents for MAGWorld-v1: scripted baselines (``magworld.agents.baselines``); light to import (no RL libraries).

Layer: imports ``magworld.envs`` and the library only; the commands around them are ``magworld.apps``.
"""

from .baselines import BASELINES, Agent, CoverageAgent, LoopExplorer, RandomAgent, SweepAgent, make_baseline

__all__ = ["Agent", "BASELINES", "CoverageAgent", "LoopExplorer", "RandomAgent", "SweepAgent", "make_baseline"]

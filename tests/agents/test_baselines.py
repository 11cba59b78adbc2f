"""Scripted baselines: valid actions, determinism, and each one doing what its name promises."""

import gymnasium as gym
import pytest

import magworld.envs  # noqa: F401  (registers MAGWorld-v1)
from magworld.agents import BASELINES, CoverageAgent, LoopExplorer, make_baseline
from magworld.agents.baselines import LOOP_DIRECTIONS, RECTANGLE_DIRECTIONS
from magworld.world import Pose


def run_episode(agent, steps: int, seed: int = 0, style: str = "outdoor", after_act=None) -> tuple[list[int], list[dict]]:
    """Actions taken and infos returned over ``steps`` steps from ``reset(seed)``; ``after_act(env)`` runs
    after each ``agent.act`` and before the step."""
    env = gym.make("MAGWorld-v1", backend="simulator", style=style, resolution=32)  # small frames: fast, same poses
    obs, info = env.reset(seed=seed)
    agent.reset(seed)
    actions, infos = [], []
    for _ in range(steps):
        action = agent.act(obs, info)
        assert isinstance(action, int) and env.action_space.contains(action)
        if after_act is not None:
            after_act(env)
        obs, _, _, _, info = env.step(action)
        actions.append(action)
        infos.append(info)
    return actions, infos


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_gives_valid_actions_and_is_deterministic(name):
    first, _ = run_episode(make_baseline(name), 50, seed=3)
    again, _ = run_episode(make_baseline(name), 50, seed=3)
    assert first == again


def test_random_agent_depends_on_the_seed():
    agent = make_baseline("random")
    assert run_episode(agent, 30, seed=1)[0] != run_episode(agent, 30, seed=2)[0]
    assert run_episode(make_baseline("random", seed=7), 30, seed=None)[0] == run_episode(make_baseline("random", seed=7), 30, seed=None)[0]


def test_sweep_pans_at_a_constant_rate():
    _, infos = run_episode(make_baseline("sweep"), 24)
    yaws = [info["pose"]["yaw"] for info in infos]
    assert all((b - a) % 360 == 15.0 for a, b in zip(yaws, yaws[1:]))
    assert set(run_episode(make_baseline("sweep", action="tilt_down"), 5)[0]) == {4}


@pytest.mark.parametrize("directions", [LOOP_DIRECTIONS, LOOP_DIRECTIONS + RECTANGLE_DIRECTIONS, (("zoom_in", "tilt_up"),)])
def test_loop_explorer_returns_to_its_start_pose(directions):
    agent = LoopExplorer(seed=0, directions=directions)
    start_pose, poses_at_loop_end = [], []

    def check(env):
        start_pose[:] = start_pose or [env.unwrapped.pose]
        if agent.loops_completed > len(poses_at_loop_end):  # the agent just saw it is home
            poses_at_loop_end.append(env.unwrapped.pose)

    _, infos = run_episode(agent, 60, seed=5, after_act=check)
    assert agent.loops_completed >= 5
    assert poses_at_loop_end == [start_pose[0]] * agent.loops_completed
    assert sum(Pose(**info["pose"]) != start_pose[0] for info in infos) > 30  # it does go out
    assert sum(info["is_revisit"] for info in infos) >= 5  # v1: only returns with enough memory-only pixels count


def test_loop_explorer_beats_random_on_revisits():
    loop = sum(info["is_revisit"] for info in run_episode(make_baseline("loop", seed=0), 60)[1])
    rand = sum(info["is_revisit"] for info in run_episode(make_baseline("random", seed=0), 60)[1])
    assert loop > rand


def test_coverage_agent_sees_a_new_view_cell_almost_every_step():
    _, infos = run_episode(CoverageAgent(), 60)
    cells = round(infos[-1]["coverage"] * 24 * 7)
    assert cells >= 55  # 60 steps: 1 start cell + one new cell per step, a few tilts through seen rows
    _, sweep_infos = run_episode(make_baseline("sweep"), 60)
    assert infos[-1]["coverage"] > 2 * sweep_infos[-1]["coverage"]


def test_bad_names_and_arguments():
    with pytest.raises(ValueError, match="unknown baseline policy 'ppo'; choose one of random, sweep, loop, coverage"):
        make_baseline("ppo")
    with pytest.raises(TypeError, match="bad arguments"):
        make_baseline("loop", speed=3)
    with pytest.raises(ValueError, match="unknown action 'fly'"):
        make_baseline("sweep", action="fly")
    with pytest.raises(ValueError, match="k_min"):
        make_baseline("loop", k_min=3, k_max=2)
    with pytest.raises(KeyError, match="pose"):
        make_baseline("coverage").act(None, {})

"""Contracts of the MAGWorld-Loop-v1 task: checkers, and the reward firing as its docstring says."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import magworld.envs  # noqa: F401  (registers the ids)
from magworld.envs.tasks import STATE_NAMES, LoopRewardConfig, LoopTaskConfig

STAY, LEFT, RIGHT, UP, DOWN = range(5)
RES = 36  # smallest size NatureCNN accepts; the task reward does not depend on it


def make(**kwargs):
    return gym.make("MAGWorld-Loop-v1", backend="simulator", resolution=RES, **kwargs)


def play(env, actions, seed=0):
    obs, info = env.reset(seed=seed)
    steps = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        steps.append((obs, reward, terminated, truncated, info))
    return steps


@pytest.mark.parametrize("observation", ["dict", "state"])
def test_both_checkers(observation):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(make(observation=observation, render_mode="rgb_array").unwrapped)
    sb3_check_env(make(observation=observation).unwrapped)


def test_registration_and_spaces():
    env = make()
    assert env.spec.max_episode_steps == magworld.envs.LOOP_MAX_STEPS == env.unwrapped.horizon
    assert set(env.observation_space.spaces) == {"pixels", "state"}
    assert env.observation_space["pixels"].shape == (RES, RES, 3)
    assert env.observation_space["state"].shape == (len(STATE_NAMES),)
    with pytest.raises(ValueError, match="observation"):
        make(observation="rgb")
    with pytest.raises(ValueError, match="min_away"):
        LoopTaskConfig(min_away=0)


LOOP_180 = [RIGHT] * 12 + [LEFT] * 12


def test_leave_180_degrees_and_return_closes_the_loop():
    """Pan right 12 (180°), pan left 12: the return views 120°..60° were >= 60° away and have a memory-only strip;
    views within 45° of the start are in the sink (nothing memory-only); the start view closes the loop."""
    env = make()
    steps = play(env, LOOP_180)
    rewards = [s[1] for s in steps]
    terms = [s[4]["reward_terms"] for s in steps]
    assert [t["directions"] for t in terms] == [1] * 7 + [0] * 17  # cells 2..8 of K = 8
    assert not any(s[2] for s in steps[:-1]) and steps[-1][2] and not steps[-1][3]  # terminated only at the start view
    # 165°..135° were not 60° away from 180° since; 120°..60° pay (simulator: 1 each); 45°..0°: all in the sink
    assert [t["far_revisit"] for t in terms[12:]] == pytest.approx([0] * 3 + [1] * 5 + [0] * 4)
    assert terms[-1]["return"] == pytest.approx(1.0)  # simulator: identical start frame, score 1
    assert rewards[-1] == pytest.approx(5.0)
    assert sum(rewards) == pytest.approx(0.7 + 5 + 5.0)
    task = steps[-1][4]["task"]
    assert task == {"far_revisits": 5, "farthest": 180.0, "directions": 13, "ready": True, "success": True}
    state = steps[-1][0]["state"]
    assert state[STATE_NAMES.index("ready")] == 1.0 and state[STATE_NAMES.index("cos_yaw")] == pytest.approx(1.0)


def test_short_loops_and_jitter_pay_no_revisit_and_do_not_end():
    env = make()
    near = play(env, [RIGHT] * 9 + [LEFT] * 3)  # to 135°, back to 90°: never 60° away
    assert all(s[4]["reward_terms"]["far_revisit"] == 0 for s in near)
    assert not near[-1][2] and near[-1][4]["is_revisit"]  # a revisit for MAGWorld-v1, but not for the task
    assert play(env, [RIGHT] * 3)[-1][0]["state"][STATE_NAMES.index("ready")] == 0.0  # 45° out: not ready
    jitter = play(env, [LEFT, RIGHT] * 10)
    assert sum(s[1] for s in jitter) == pytest.approx(0.1)  # only the one new cell at -15°


def test_each_view_pays_once():
    """Out to 180°, back to 60°, out to 180° again and back to 60°: the second return pays nothing."""
    env = make()
    steps = play(env, [RIGHT] * 12 + [LEFT] * 8 + [RIGHT] * 8 + [LEFT] * 8)
    first, second = steps[12:20], steps[28:36]
    assert sum(s[4]["reward_terms"]["far_revisit"] for s in first) == pytest.approx(5)
    assert sum(s[4]["reward_terms"]["far_revisit"] for s in second) == 0.0


def test_far_revisits_are_capped_so_circling_without_closing_pays_less():
    env = make()
    circling = play(env, [DOWN] + [RIGHT] * 49)  # never at the start view (pitch -10°), second lap all far revisits
    assert circling[-1][3] and not any(s[2] for s in circling)
    assert circling[-1][4]["task"]["far_revisits"] == LoopTaskConfig().max_far_revisits == 8
    assert sum(s[1] for s in circling) == pytest.approx(0.7 + 8)
    assert sum(s[1] for s in circling) < 0.7 + 5 + 5.0  # the 180° loop that closes


def test_loop_must_match_pitch_and_fov_and_truncates_at_horizon():
    env = make()
    steps = play(env, [UP] + LOOP_180)  # back to yaw 0 but at pitch 10°: not the start view
    assert not any(s[2] for s in steps)
    steps = play(env, [STAY] * env.spec.max_episode_steps)
    assert steps[-1][3] and not steps[-1][2] and sum(s[1] for s in steps) == 0.0


def test_reward_weights_come_from_reward():
    """The 180° loop of test_leave_180_degrees_and_return_closes_the_loop, reweighted through reward=."""
    weights = {"w_revisit": 0.5, "w_direction": 0.0, "w_return": 2.0}
    for reward in (weights, LoopRewardConfig(**weights)):
        env = make(reward=reward)
        steps = play(env, LOOP_180)
        assert env.unwrapped.reward_cfg == LoopRewardConfig(**weights) and steps[-1][2]
        assert sum(s[1] for s in steps) == pytest.approx(0.5 * 5 + 2.0)
    out_and_almost_back = LOOP_180[:-1]  # ends 15° short of the start view
    assert not play(make(), out_and_almost_back)[-1][2]
    assert play(make(reward={"tolerance": 20.0}), out_and_almost_back)[-1][2]  # within 20°: the loop closes


@pytest.mark.parametrize("kwargs, message", [({"task": {"w_return": 1.0}}, "w_return belong.* in reward=, not task="),
                                             ({"reward": {"min_away": 30.0}}, "min_away belong.* in task=, not reward="),
                                             ({"reward": {"w_explore": 1.0}}, "w_direction"),
                                             ({"horizon": 80}, "max_episode_steps")])
def test_misplaced_task_and_reward_arguments_are_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


@pytest.mark.parametrize("limit", [None, 12, -1])
def test_horizon_follows_the_time_limit(limit):
    """The state's time entry is step / max_episode_steps of this gym.make (0 without a limit)."""
    env = make(max_episode_steps=limit, observation="state")
    horizon = {None: magworld.envs.LOOP_MAX_STEPS, 12: 12, -1: None}[limit]
    assert env.unwrapped.horizon == horizon and env.spec.max_episode_steps == horizon
    steps = play(env, [STAY] * (horizon or 20))
    times = [s[0][STATE_NAMES.index("time")] for s in steps]
    expected = [0.0] * 20 if horizon is None else [(t + 1) / horizon for t in range(horizon)]
    assert times == pytest.approx(expected)
    assert [s[3] for s in steps] == [False] * (len(steps) - 1) + [horizon is not None]


def test_same_seed_same_episode():
    actions = np.random.default_rng(3).integers(0, 7, size=30)
    a, b = play(make(), actions, seed=4), play(make(), actions, seed=4)
    for x, y in zip(a, b):
        assert np.array_equal(x[0]["pixels"], y[0]["pixels"]) and np.array_equal(x[0]["state"], y[0]["state"])
        assert x[1] == y[1] and x[4]["task"] == y[4]["task"]

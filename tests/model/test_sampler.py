"""BlockSampler, the one denoising loop: exact velocity fields, seeds per world, argument errors."""

from __future__ import annotations

import pytest
import torch
from model_testing import micro_config, perturbed, random_inputs

from magworld.model.flow import FlowConfig
from magworld.model.generator import Generator, GeneratorConfig
from magworld.model.sampler import BlockSampler, Known

SHAPE = (2, 3, 4, 4, 4)  # (N worlds, T frames, C, h, w)


def streams(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.mark.parametrize("mode", ["euler", "renoise"])
def test_point_data_lands_on_the_point(mode):
    """Data = one point x0: the exact flow velocity is (x_t - x0) / t, and any number of steps lands on x0."""
    x0 = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9))
    sampler = BlockSampler(FlowConfig(steps=4, shift=3.0, mode=mode))
    out = sampler.sample(lambda x, t: (x - x0) / t[..., None, None, None], SHAPE, streams(1, 2))
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=0)


def test_euler_maps_noise_to_gaussian_data_along_the_exact_flow():
    """Data ~ N(mu, s^2) per element: x_t = (1 - t) mu + sigma_t z with sigma_t^2 = (1 - t)^2 s^2 + t^2 keeps z
    along the ODE, so integrating from the sampler's own starting noise eps ends at mu + s * eps."""
    mu, s = 1.5, 0.5

    def velocity(x, t):  # E[eps - x0 | x_t] for Gaussian data
        t = t[..., None, None, None]
        var = (1 - t) ** 2 * s ** 2 + t ** 2
        centred = x - (1 - t) * mu
        return t / var * centred - (mu + (1 - t) * s ** 2 / var * centred)

    sampler = BlockSampler(FlowConfig(steps=400, shift=1.0, mode="euler"))
    out = sampler.sample(velocity, SHAPE, streams(3, 4))
    eps = sampler.noise(SHAPE, streams(3, 4), torch.device("cpu"))
    torch.testing.assert_close(out, mu + s * eps, atol=1e-2, rtol=0)  # Euler error O(1/steps)


def test_levels_descend_from_one_to_zero():
    levels = BlockSampler(FlowConfig(steps=4, shift=3.0)).levels
    assert len(levels) == 5 and levels[0] == 1.0 and levels[-1] == 0.0 and levels[1] > 0.75
    assert all(a > b for a, b in zip(levels, levels[1:]))


def test_same_seed_same_block_other_seed_differs():
    tc = micro_config()
    gen = perturbed(Generator(GeneratorConfig(transformer=tc)), 0).eval()
    _, _, pose, text = random_inputs(tc, 2, 3)
    sampler = BlockSampler(FlowConfig(shift=2.0, steps=4, mode="renoise"))
    shape = (2, 3, tc.latent_channels, tc.latent_size, tc.latent_size)
    with torch.no_grad():
        a, b, c = (sampler.sample(lambda x, t: gen(x, t, pose, text).prediction, shape, streams(*seeds))
                   for seeds in ((1, 2), (1, 2), (1, 3)))
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert torch.equal(a[0], c[0]) and not torch.allclose(a[1], c[1])  # world 0 depends only on its own seed


def test_rejects_zero_steps_and_wrong_generator_count():
    with pytest.raises(ValueError, match="at least one step"):
        BlockSampler(FlowConfig(steps=0))
    with pytest.raises(ValueError, match="one torch.Generator per world"):
        BlockSampler(FlowConfig()).noise((2, 3), [torch.Generator()], torch.device("cpu"))


@pytest.mark.parametrize("mode", ["euler", "renoise"])
def test_exit_at_the_last_step_is_the_full_loop(mode):
    """Training's exit_step (Self Forcing) at the last step returns exactly the block the run-time loop samples."""
    net = perturbed(Generator(GeneratorConfig(transformer=micro_config())), seed=3).eval()
    _, _, pose, text = random_inputs(net.cfg.transformer, 2, 3)
    sampler = BlockSampler(FlowConfig(steps=3, shift=2.0, mode=mode))

    def velocity(x, t):
        return net(x, t, pose, text).prediction

    with torch.no_grad():
        full = sampler.sample(velocity, SHAPE, streams(4, 5))
        exited = sampler.sample(velocity, SHAPE, streams(4, 5), exit_step=2)
        early = sampler.sample(velocity, SHAPE, streams(4, 5), exit_step=0)
    assert torch.equal(full, exited)
    assert not torch.allclose(early, full)  # an earlier exit is the coarser x_0 prediction


@pytest.mark.parametrize("exit_step", [0, 1, 3])
def test_exit_step_records_gradients_through_that_step_only(exit_step):
    """Gradients reach the network from the exit step's call and from no other; the output is that call's x_0."""
    weight = torch.tensor(0.5, requires_grad=True)
    calls = []

    def velocity(x, t):
        calls.append(torch.is_grad_enabled())
        return weight * x

    sampler = BlockSampler(FlowConfig(steps=4, shift=2.0, mode="renoise"))
    out = sampler.sample(velocity, SHAPE, streams(1, 2), exit_step=exit_step)
    assert calls == [False] * exit_step + [True]
    out.sum().backward()
    now = sampler.levels[exit_step]
    x = out.detach() / (1 - now * weight.detach())  # out = x - now * weight * x
    torch.testing.assert_close(weight.grad, -now * x.sum(), rtol=1e-4, atol=1e-4)


def test_exit_step_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="exit_step"):
        BlockSampler(FlowConfig(steps=4)).sample(lambda x, t: x, SHAPE, streams(1, 2), exit_step=4)


def _point_velocity(target):
    return lambda x, t: (x - target) / t[..., None, None, None]


@pytest.mark.parametrize("mode", ["euler", "renoise"])
def test_known_frames_come_back_exactly_and_the_others_follow_the_flow(mode):
    """Inpainting: the known frames (1 of 3) end at their given values bit for bit; the others land on the point
    the exact velocity field leads them to, as without known frames."""
    target = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9))
    given = torch.randn(SHAPE, generator=torch.Generator().manual_seed(10))
    frames = torch.tensor([True, False, False])
    sampler = BlockSampler(FlowConfig(steps=4, shift=3.0, mode=mode))
    out = sampler.sample(_point_velocity(target), SHAPE, streams(1, 2), known=Known(given, frames))
    assert torch.equal(out[:, 0], given[:, 0])
    torch.testing.assert_close(out[:, 1:], target[:, 1:], atol=1e-5, rtol=0)


def test_the_network_sees_known_frames_noised_to_each_level_with_one_noise():
    """At level t the known frames are (1 - t) x0 + t eps with the same eps at every call (the first call, t = 1,
    shows eps itself); in Euler mode the unknown frames get exactly the plain loop's values (their noise is drawn
    first, as without known frames)."""
    given = torch.randn(SHAPE, generator=torch.Generator().manual_seed(10))
    frames = torch.tensor([True, True, False])
    seen: list[tuple[torch.Tensor, float]] = []

    def velocity(x, t):
        seen.append((x.clone(), float(t[0, 0])))
        return x - 0.5 * t[..., None, None, None]  # depends on each frame alone

    sampler = BlockSampler(FlowConfig(steps=4, shift=2.0, mode="euler"))
    out = sampler.sample(velocity, SHAPE, streams(5, 6), known=Known(given, frames))
    eps = seen[0][0][:, :2]
    assert seen[0][1] == 1.0
    for x, t in seen[1:]:
        torch.testing.assert_close(x[:, :2], (1 - t) * given[:, :2] + t * eps, atol=1e-6, rtol=0)
    plain = sampler.sample(velocity, SHAPE, streams(5, 6))
    assert torch.equal(out[:, 2], plain[:, 2])


def test_known_frames_with_wrong_shapes_are_rejected():
    sampler = BlockSampler(FlowConfig(steps=2))
    with pytest.raises(ValueError, match="known block"):
        sampler.sample(_point_velocity(0.0), SHAPE, streams(1, 2), known=Known(torch.zeros(SHAPE), torch.tensor([1, 0, 0])))
    with pytest.raises(ValueError, match="known block"):
        sampler.sample(_point_velocity(0.0), SHAPE, streams(1, 2),
                       known=Known(torch.zeros(2, 2, 4, 4, 4), torch.tensor([True, False])))
    with pytest.raises(ValueError, match="known block"):  # a cell mask that does not broadcast to the block
        sampler.sample(_point_velocity(0.0), SHAPE, streams(1, 2),
                       known=Known(torch.zeros(SHAPE), torch.ones(SHAPE[0], SHAPE[1], 1, 3, 3, dtype=torch.bool)))


@pytest.mark.parametrize("mode", ["renoise", "euler"])
def test_known_cells_come_back_exactly_and_the_others_follow_the_flow(mode):
    """Inpainting per latent cell (a world keeping what it carries): the marked cells of every frame end at their
    given values bit for bit, each world with its own mask; the other cells land where the exact field leads."""
    target = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9))
    given = torch.randn(SHAPE, generator=torch.Generator().manual_seed(10))
    where = torch.rand(SHAPE[0], SHAPE[1], 1, *SHAPE[3:], generator=torch.Generator().manual_seed(11)) < 0.5
    sampler = BlockSampler(FlowConfig(steps=4, shift=3.0, mode=mode))
    out = sampler.sample(_point_velocity(target), SHAPE, streams(1, 2), known=Known(given, where))
    cells = where.expand(SHAPE)
    assert torch.equal(out[cells], given[cells])
    torch.testing.assert_close(out[~cells], target[~cells], atol=1e-5, rtol=0)


def test_exit_step_keeps_the_known_part_and_equals_the_full_loop_at_the_last_step():
    """Self Forcing with inpainting: the exit step's x0 holds the known cells at their given values (no gradient
    there), and exiting at the last step gives the full loop's block."""
    given = torch.randn(SHAPE, generator=torch.Generator().manual_seed(12))
    where = torch.zeros(SHAPE[0], SHAPE[1], 1, *SHAPE[3:], dtype=torch.bool)
    where[..., :2] = True
    weight = torch.tensor(0.7, requires_grad=True)
    velocity = lambda x, t: weight * x  # noqa: E731
    sampler = BlockSampler(FlowConfig(steps=3, shift=2.0))
    early = sampler.sample(velocity, SHAPE, streams(1, 2), exit_step=0, known=Known(given, where))
    cells = where.expand(SHAPE)
    assert torch.equal(early[cells].detach(), given[cells])
    early.sum().backward()
    assert weight.grad is not None and weight.grad != 0  # the unknown cells carry the gradient
    with torch.no_grad():
        last = sampler.sample(velocity, SHAPE, streams(1, 2), exit_step=2, known=Known(given, where))
        full = sampler.sample(velocity, SHAPE, streams(1, 2), known=Known(given, where))
    torch.testing.assert_close(last, full, atol=1e-6, rtol=0)

"""The one training loop (magworld.train.loop.run_stage) on a toy stage: schedule, resume, time budget, config."""

import json
from itertools import count

import pytest
import torch
from torch import nn

from stage_testing import metrics_lines
from magworld.train.loop import Placement, RunConfig, Stage, every, run_stage


def toy_stage(evals: list[int], steps_seen: list[int]) -> Stage:
    """A linear model regressing a fixed target; ``evals``/``steps_seen`` record when the loop called it."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = torch.randn(8, 4), torch.randn(8, 1)

    def data(start: int):
        return ((x, y, k) for k in count(start))

    def step(net, batch):
        steps_seen.append(batch[2])
        return {"loss": nn.functional.mse_loss(net(batch[0]), batch[1]), "batch": batch[2]}

    @torch.no_grad()
    def evaluate():
        evals.append(len(steps_seen))
        return {"mse": float(nn.functional.mse_loss(model(x), y))}

    return Stage(kind="toy", model=model, model_config={"features": 4},
                 optimizer=torch.optim.AdamW(model.parameters(), lr=1e-2), data=data, step=step, evaluate=evaluate)


def _run(out, steps, **kw) -> RunConfig:
    return RunConfig(out_dir=str(out), steps=steps, batch_size=2, warmup_steps=1, threads=1, device="cpu", **{
        "log_every": 1, "eval_every": 2, "save_every": 1, **kw})


CPU = Placement(torch.device("cpu"))


def test_periodic_eval_then_a_final_one(tmp_path):
    evals, seen = [], []
    metrics = run_stage(toy_stage(evals, seen), _run(tmp_path, 5), CPU, {})
    assert seen == [0, 1, 2, 3, 4]
    assert evals == [2, 4, 5]  # every 2 steps, and the last step (5) is evaluated once at the end
    assert [x["step"] for x in metrics_lines(tmp_path) if "mse" in x] == [2, 4, 5]
    assert [x["batch"] for x in metrics_lines(tmp_path) if "loss" in x] == [0, 1, 2, 3, 4]
    assert all(x["grad_norm"] > 0 for x in metrics_lines(tmp_path) if "loss" in x)  # before clipping, every line
    assert (tmp_path / "toy.safetensors").exists() and metrics.keys() == {"mse"}


def test_eval_every_zero_means_only_the_final_eval(tmp_path):
    evals, seen = [], []
    run_stage(toy_stage(evals, seen), _run(tmp_path, 3, eval_every=0, save_every=0, log_every=0), CPU, {})
    assert evals == [3]
    assert [x["step"] for x in metrics_lines(tmp_path)] == [3]  # no loss lines either (log_every=0)
    assert (tmp_path / "last.safetensors").exists()  # saved at the end even with save_every=0


def test_resume_continues_and_a_finished_run_only_reexports(tmp_path):
    run_stage(toy_stage([], []), _run(tmp_path, 2), CPU, {})
    evals, seen = [], []
    run_stage(toy_stage(evals, seen), _run(tmp_path, 4), CPU, {})
    assert seen == [2, 3]  # data restarts at the resumed step
    meta = json.loads((tmp_path / "toy.json").read_text())
    assert meta["extra"]["step"] == 4
    evals, seen = [], []
    metrics = run_stage(toy_stage(evals, seen), _run(tmp_path, 4), CPU, {})
    assert seen == [] and evals == [0] and "mse" in metrics  # nothing to train: evaluate and export


def test_time_budget_stops_and_saves(tmp_path):
    evals, seen = [], []
    run_stage(toy_stage(evals, seen), _run(tmp_path, 50, max_minutes=1e-9, save_every=0), CPU, {})
    assert seen == [0]
    assert json.loads((tmp_path / "last.json").read_text())["extra"]["step"] == 1


def test_bf16_placement_runs_the_step_under_autocast(tmp_path):
    seen_autocast = []
    stage = toy_stage([], [])
    inner = stage.step
    stage.step = lambda m, b: seen_autocast.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu")
                                                   else None) or inner(m, b)
    run_stage(stage, _run(tmp_path, 1), Placement(torch.device("cpu"), "bf16"), {})
    assert seen_autocast == [torch.bfloat16]
    assert stage.model.weight.dtype == torch.float32  # autocast: the weights stay fp32


def test_every():
    assert [s for s in range(1, 7) if every(3, s)] == [3, 6]
    assert not any(every(0, s) for s in range(1, 7))


@pytest.mark.parametrize("field,value", [("precision", "fp16"), ("device", "tpu"), ("eval_every", -1),
                                         ("batch_size", 0)])
def test_run_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        RunConfig(**{field: value})


def test_two_groups_scaled_lr_skipped_updates_and_after_step(tmp_path):
    """A two-network stage: group lr_scale, a network without a loss this step stays put (no gradients), each
    network's gradients clipped alone, after_step sees every step done."""
    torch.manual_seed(0)
    model = nn.ModuleDict({"a": nn.Linear(4, 1), "b": nn.Linear(4, 1)})
    optimizer = torch.optim.SGD([{"params": model["a"].parameters()},
                                 {"params": model["b"].parameters(), "lr_scale": 0.5}], lr=1.0)
    x, y = torch.randn(8, 4), torch.randn(8, 1)
    grad_a = torch.autograd.grad(nn.functional.mse_loss(model["a"](x), y), model["a"].weight)[0]
    done, a_weights, b_weights = [], [], []

    def step(net, k):
        loss = nn.functional.mse_loss(net["a"](x), y)
        if k % 2 == 0:  # b learns every other step only, with a huge loss (clipped)
            loss = loss + 1e6 * nn.functional.mse_loss(net["b"](x), y)
        a_weights.append(net["a"].weight.detach().clone())
        b_weights.append(net["b"].weight.detach().clone())
        return {"loss": loss}

    stage = Stage(kind="pair", model=model, model_config={}, optimizer=optimizer, data=lambda s: count(s), step=step,
                  evaluate=lambda: {}, max_grad_norm=10.0, clip_groups=(model["a"], model["b"]),
                  after_step=done.append)
    run_stage(stage, _run(tmp_path, 3, lr=0.01, save_every=0, eval_every=0), CPU, {})
    assert done == [1, 2, 3]
    lr_a, lr_b = (g["lr"] for g in optimizer.param_groups)
    assert lr_b == pytest.approx(0.5 * lr_a)
    moved = [float((b - a).norm()) for a, b in zip(b_weights, b_weights[1:])]
    assert 0 < moved[0] <= 0.01 * 0.5 * 10 * 1.0001 and moved[1] == 0  # b clipped to 10; step 1 gave b no gradient
    assert grad_a.norm() < 10  # so a, clipped alone, is not clipped at all (clipped with b it would barely move)
    torch.testing.assert_close(a_weights[1] - a_weights[0], -0.01 * grad_a, rtol=1e-4, atol=1e-7)


def test_lr_schedule_warms_up_decays_to_a_tenth_and_can_keep_a_first_runs_length():
    """Linear warm-up, cosine to 10 % at run.steps; with schedule_steps the decay keeps that length, so resuming a
    finished run with more steps continues at the floor instead of climbing back toward the peak."""
    from magworld.train.loop import lr_at

    cfg = RunConfig(steps=100, warmup_steps=10, lr=1.0)
    assert lr_at(0, cfg) == pytest.approx(0.1) and lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0) and lr_at(100, cfg) == pytest.approx(0.1)
    assert lr_at(55, cfg) == pytest.approx(0.55)  # halfway through the decay
    longer = RunConfig(steps=400, warmup_steps=10, lr=1.0)
    assert lr_at(150, longer) > 0.7  # a plain resume to 400 steps climbs back (0.74 at step 150)
    kept = RunConfig(steps=400, warmup_steps=10, lr=1.0, schedule_steps=100)
    assert lr_at(55, kept) == pytest.approx(0.55) and lr_at(150, kept) == pytest.approx(0.1) == lr_at(399, kept)
    with pytest.raises(ValueError, match="schedule_steps"):
        RunConfig(schedule_steps=-1)

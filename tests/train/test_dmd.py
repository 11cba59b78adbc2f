"""Stages ``teacher`` and ``dmd`` on micro models: the DMD update lowers the critic-teacher gap, resume, bf16 with
reproject, configs. Micro autoencoder and memory model are random (perturbed) and saved as checkpoints; the teacher
is trained one step by its own stage."""

import json
import math
from dataclasses import fields

import pytest
import torch
from hydra import compose, initialize_config_module
from model_testing import perturbed

from stage_testing import autocast_dtype, metrics_lines, spy_steps
from magworld.config import build
from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.checkpoint import load_checkpoint, load_tensors, save_checkpoint
from magworld.model.config import transformer_preset
from magworld.model.flow import add_noise
from magworld.model.generator import GeneratorConfig
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import load_generator
from magworld.model.teacher import Teacher, TeacherConfig, load_teacher
from magworld.model.text import TextConfig
from magworld.train import dmd
from magworld.train import teacher as teacher_stage
from magworld.train.loop import Placement, RunConfig
from magworld.train.data import WorldDataConfig

MICRO = transformer_preset("tiny", dim=32, depth=1, heads=2, latent_size=4)
HASHING = TextConfig(encoder="hashing", cache_dir="")
CPU = Placement(torch.device("cpu"))


def _data() -> WorldDataConfig:
    return WorldDataConfig(styles=["indoor", "game"], resolution=32, pool_size=2, refresh_every=0)


def _run(out, steps: int, **kw) -> RunConfig:
    return RunConfig(**{"out_dir": str(out), "steps": steps, "batch_size": 2, "log_every": 1, "eval_every": 0,
                        "save_every": 1, "warmup_steps": 0, "threads": 1, "device": "cpu", "lr": 1e-3,
                        "weight_decay": 0.0, **kw})


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    """Paths of a micro autoencoder (32 px -> 4x4x16 latents), memory model and one-step teacher (2-block clips)."""
    out = tmp_path_factory.mktemp("micro")
    torch.manual_seed(0)
    ae_cfg = AutoencoderConfig(channels=[8, 16, 16], latent_channels=16, groups=4)
    save_checkpoint(out / "ae", perturbed(Autoencoder(ae_cfg), 1), "autoencoder", ae_cfg)
    mem_cfg = MemoryConfig(transformer=MICRO)
    save_checkpoint(out / "memory", perturbed(MemoryModel(mem_cfg), 2), "memory", mem_cfg)
    cfg = teacher_stage.TeacherStageConfig(run=_run(out / "teacher", 1), data=_data(), text=HASHING,
                                           model=TeacherConfig(transformer=MICRO, clip_blocks=2),
                                           autoencoder=str(out / "ae.safetensors"), init="memory",
                                           memory_model=str(out / "memory.safetensors"), eval_clips=2)
    metrics = teacher_stage.train(cfg)
    return {"ae": str(out / "ae.safetensors"), "memory": str(out / "memory.safetensors"),
            "teacher": str(out / "teacher" / "teacher.safetensors"), "teacher_metrics": metrics}


def dmd_config(micro, out, steps: int, **kw) -> dmd.DMDStageConfig:
    run = _run(out, steps, **kw.pop("run", {}))
    return dmd.DMDStageConfig(**{"run": run, "model": GeneratorConfig(transformer=MICRO), "data": _data(),
                                 "text": HASHING, "autoencoder": micro["ae"], "memory_model": micro["memory"],
                                 "teacher": micro["teacher"], "init": "memory", "blocks": 4, "context_blocks": 1,
                                 "generator_every": 1, "ema_start": 0, "eval_clips": 1, "eval_context_blocks": 2,
                                 **kw})


def record_models(models, batch) -> dict:
    """The batch, the autocast dtype and copies of the generator's and critic's weights, before a DMD step."""
    return {"batch": batch, "generator": {k: v.clone() for k, v in models.generator.state_dict().items()},
            "critic": {k: v.clone() for k, v in models.critic.state_dict().items()},
            "autocast": autocast_dtype(models, batch)}


def test_teacher_stage_trains_and_exports(micro):
    teacher = load_teacher(micro["teacher"])
    assert teacher.cfg.frames == 6 and not teacher.training
    assert math.isfinite(micro["teacher_metrics"]["val_loss"])
    x = torch.zeros(1, 3, 16, 4, 4)
    with pytest.raises(ValueError, match="clip_blocks"):  # a window of the wrong length is refused
        teacher(x, torch.ones(1, 3), torch.zeros(1, 3, 3), torch.zeros(1, 1, 384))


def test_two_dmd_steps_move_the_generator_to_lower_the_critic_teacher_gap(micro, tmp_path, monkeypatch):
    """Step 1: the critic starts as the teacher, so the DMD gradient is exactly zero and the generator stays put
    (no weight decay). Step 2: the generator's update has a positive inner product with -grad of the gap
    G = <x, sg(x0_fake - x0_real)> of its window on step 2's fixed batch (re-noised at that batch's time and noise),
    with x0_fake, x0_real computed here from the critic (as it was before step 2) and the teacher."""
    seen = spy_steps(monkeypatch, dmd, record_models)
    cfg = dmd_config(micro, tmp_path, 2)
    dmd.train(cfg)
    assert [s["autocast"] for s in seen] == [None, None]
    lines = metrics_lines(tmp_path)
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]
    assert all(x["generator_step"] and math.isfinite(x["dmd_loss"]) for x in lines if "loss" in x)
    final = load_checkpoint(tmp_path / "dmd.safetensors", "dmd")[0]
    after = {k[len("generator."):]: v for k, v in final.items() if k.startswith("generator.")}
    before1, before2 = seen[0]["generator"], seen[1]["generator"]
    assert all(torch.equal(before1[k], before2[k]) for k in before1)  # zero DMD gradient at step 1
    assert not all(torch.equal(seen[0]["critic"][k], seen[1]["critic"][k]) for k in seen[0]["critic"])

    models, parts, _ = dmd.build_parts(cfg, torch.device("cpu"))
    models.generator.load_state_dict(before2)
    models.critic.load_state_dict(seen[1]["critic"])
    b = seen[1]["batch"]
    window = dmd.rollout_window(models.generator, parts.memory, parts.autoencoder, parts.text_encoder, b,
                                parts.teacher.cfg.clip_blocks, grad=True)
    with torch.no_grad():
        t = b.dmd_t[:, None].expand(-1, window.shape[1])
        x_t = add_noise(window.detach(), b.dmd_noise, t)
        direction = parts.teacher.x0(x_t, t, b.window_poses, b.teacher_text) - \
            models.critic.x0(x_t, t, b.window_poses, b.teacher_text)  # where the teacher's x0 lies
    gap = -(window * direction).sum()  # decreasing it moves the window toward the teacher's x0
    params = dict(models.generator.named_parameters())
    grads = torch.autograd.grad(gap, list(params.values()), allow_unused=True)
    inner = sum(float(((after[k] - before2[k]) * -g).sum()) for k, g in zip(params, grads) if g is not None)
    assert inner > 0
    assert load_generator(tmp_path / "generator.safetensors").cfg == cfg.model  # the EMA export loads as a generator


def test_critic_loss_is_flow_matching_on_the_window_and_dmd_surrogate_gradient_is_the_normalised_gap():
    """The surrogate's gradient w.r.t. the window is (x0_fake - x0_real) / mean|x - x0_real| / numel, written
    out here for a teacher and a critic that differ."""
    torch.manual_seed(0)
    cfg = TeacherConfig(transformer=MICRO, clip_blocks=1)
    teacher, critic = perturbed(Teacher(cfg), 3).eval(), perturbed(Teacher(cfg), 4).eval()
    x = torch.randn(2, 3, 16, 4, 4, requires_grad=True)
    pose, text = torch.zeros(2, 3, 3), torch.randn(2, 1, 384)
    t, noise = torch.tensor([0.3, 0.7]), torch.randn(2, 3, 16, 4, 4)
    loss, _ = dmd.dmd_loss(x, teacher, critic, pose, text, t, noise)
    loss.backward()
    times = t[:, None].expand(-1, 3)
    with torch.no_grad():
        x_t = add_noise(x, noise, times)
        real, fake = teacher.x0(x_t, times, pose, text), critic.x0(x_t, times, pose, text)
        norm = (x - real).abs().mean(dim=(1, 2, 3, 4), keepdim=True)
    torch.testing.assert_close(x.grad, (fake - real) / norm / x.numel(), rtol=1e-4, atol=1e-9)
    flow = dmd.critic_loss(critic, x, pose, text, t, noise)
    with torch.no_grad():
        assert float(flow) == pytest.approx(float(((critic(x_t, times, pose, text) - (noise - x)) ** 2).mean()), rel=1e-5)


def test_resume_restores_generator_critic_ema_and_optimizer(micro, tmp_path, monkeypatch):
    cfg = dmd_config(micro, tmp_path, 1, generator_every=2, ema_start=0)
    dmd.train(cfg)
    saved = load_checkpoint(tmp_path / "last.safetensors", "dmd")[0]
    seen = spy_steps(monkeypatch, dmd, record_models)
    dmd.train(dmd_config(micro, tmp_path, 3, generator_every=2, ema_start=0))
    assert [x["step"] for x in metrics_lines(tmp_path) if "loss" in x] == [1, 2, 3]  # continued, not restarted
    assert [s["batch"].train_generator for s in seen] == [False, True]  # steps 2, 3 of the run (k=2 from its start)
    assert all(torch.equal(seen[0]["critic"][k], saved[f"critic.{k}"]) for k in seen[0]["critic"])
    assert all(torch.equal(seen[0]["generator"][k], saved[f"generator.{k}"]) for k in seen[0]["generator"])
    groups = json.loads((tmp_path / "last.json").read_text())["optimizer"]["param_groups"]
    state = load_tensors(tmp_path / "last.safetensors")
    counted = [{float(state[f"optim/{i}/step"]) for i in group["params"]} for group in groups]
    assert counted == [{2.0}, {3.0}]  # AdamW state restored after step 1: generator updated on steps 1, 3; critic 1..3
    final = load_checkpoint(tmp_path / "dmd.safetensors", "dmd")[0]
    ema = load_checkpoint(tmp_path / "generator.safetensors", "generator")[0]
    assert all(torch.equal(ema[k], final[f"ema.{k}"]) for k in ema)  # the export is the EMA
    assert not all(torch.equal(ema[k], final[f"generator.{k}"]) for k in ema)  # decay 0.99 lags the generator


def test_log_lines_carry_both_networks_gradient_norms_and_the_last_generator_step(micro, tmp_path):
    """Every log line has each network's gradient norm (before clipping) from its latest update and, on critic-only
    steps, the latest generator step's DMD values: with k = 2 the generator learns on steps 1 and 3 only."""
    dmd.train(dmd_config(micro, tmp_path, 3, generator_every=2))
    lines = [x for x in metrics_lines(tmp_path) if "loss" in x]
    assert [x["generator_step"] for x in lines] == [True, False, True]
    assert all(x["grad_norm_generator"] >= 0 and x["grad_norm_critic"] > 0 for x in lines)  # step 1: critic = teacher,
    assert lines[2]["grad_norm_generator"] > 0  # so its DMD gradient is 0; by step 3 the critic has moved
    assert lines[1]["dmd_loss"] == lines[0]["dmd_loss"] and lines[1]["grad_norm_generator"] == lines[0]["grad_norm_generator"]
    assert lines[1]["grad_norm_critic"] != lines[0]["grad_norm_critic"]  # the critic learned on step 2
    assert lines[2]["dmd_loss"] != lines[0]["dmd_loss"]


def test_bf16_step_with_a_reproject_generator(micro, tmp_path, monkeypatch):
    """CPU bf16 autocast through the same code as CUDA bf16; a reproject generator reads the reprojected last frame."""
    seen = spy_steps(monkeypatch, dmd, record_models)
    model = GeneratorConfig(transformer=MICRO, reproject=True)
    metrics = dmd.train(dmd_config(micro, tmp_path, 1, model=model, init="memory", run={"precision": "bf16"}))
    assert [s["autocast"] for s in seen] == [torch.bfloat16]
    line = [x for x in metrics_lines(tmp_path) if "loss" in x][0]
    assert math.isfinite(line["loss"]) and math.isfinite(line["dmd_loss"]) and math.isfinite(metrics["psnr_mag"])
    assert load_generator(tmp_path / "generator.safetensors").cfg.reproject


@pytest.fixture(scope="module")
def train_config():
    with initialize_config_module(version_base="1.3", config_module="magworld.configs"):
        return compose(config_name="train", overrides=["stage=dmd"])


def test_dmd_and_teacher_yaml_spell_out_their_model_configs(train_config):
    assert set(train_config.dmd.model) - {"_target_"} == {f.name for f in fields(GeneratorConfig)}
    assert set(train_config.teacher.model) - {"_target_"} == {f.name for f in fields(TeacherConfig)}
    cfg = build(train_config.dmd)
    # the student starts as the bundled generator, which samples in one step
    assert (cfg.generator_every, cfg.model.flow.steps, cfg.teacher) == (5, 1, "runs/teacher/teacher.safetensors")
    assert build(train_config.teacher).model.flow.steps >= 8 * cfg.model.flow.steps  # many-step teacher


@pytest.mark.parametrize("field,value", [("generator_every", 0), ("history_drop", 1.5), ("context_blocks", 8),
                                         ("eval_policies", ["recent"]), ("min_t", 0.99)])
def test_dmd_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0] if field != "eval_policies" else "recent"):
        dmd.DMDStageConfig(**{field: value})

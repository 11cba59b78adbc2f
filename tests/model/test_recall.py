"""mag-recall and mag-ring (issue 13): exact view overlap, recall of the frame that saw the view, a store bounded by
the world on a long pose sequence, cached generation equal to the parallel training pass, batch equal to single worlds,
snapshots that restore bit for bit, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_testing import micro_config, perturbed, random_inputs

from magworld.model.autoencoder import Autoencoder, AutoencoderConfig
from magworld.model.cache import CacheConfig, KVCache
from magworld.model.generator import Generator, GeneratorConfig, write_block, write_clip
from magworld.model.masks import held_frames, reader_mask
from magworld.model.memory_model import MemoryConfig, MemoryModel
from magworld.model.pipeline import WorldModel
from magworld.model.recall import ViewStore, recall_held, store_bound, view_keys, view_overlap
from magworld.model.reproject import sample_grid
from magworld.model.text import HashingTextEncoder

ACTIONS = np.array([(0, 0, 0), (-15, 0, 0), (15, 0, 0), (0, 10, 0), (0, -10, 0), (0, 0, -10), (0, 0, 10)], float)


def walk(blocks: int, seed: int = 0, start=(0.0, 0.0, 60.0)) -> np.ndarray:
    """(blocks, 3) poses of a random walk with the env's actions and limits (pitch ±30°, fov 30°-90°)."""
    rng, pose, out = np.random.default_rng(seed), np.array(start, float), []
    for a in rng.integers(0, 7, blocks):
        pose = pose + ACTIONS[a]
        pose = np.array([pose[0] % 360, np.clip(pose[1], -30, 30), np.clip(pose[2], 30, 90)])
        out.append(pose)
    return np.array(out)


# --- geometry -----------------------------------------------------------------------------------------
def test_view_overlap_is_the_reprojection_geometry():
    rng = np.random.default_rng(3)
    targets = np.column_stack([rng.uniform(0, 360, 3), rng.uniform(-30, 30, 3), rng.uniform(30, 90, 3)])
    sources = np.column_stack([rng.uniform(0, 360, 200), rng.uniform(-30, 30, 200), rng.uniform(30, 90, 200)])
    _, valid = sample_grid(torch.tensor(targets).repeat(200, 1), torch.tensor(sources).repeat_interleave(3, 0), 16, 16)
    expected = valid.flatten(1).double().mean(1).view(200, 3).mean(1).numpy()
    got = view_overlap(targets, sources, 16)
    np.testing.assert_array_equal(got, expected)
    assert 0 < (got > 0).sum() < 200  # some overlap, some do not
    front = np.array([[10.0, 0.0, 60.0]])
    cases = np.array([[10.0, 0.0, 60.0], [190.0, 0.0, 60.0], [10.0, 0.0, 90.0], [40.0, 0.0, 60.0]])
    np.testing.assert_allclose(view_overlap(front, cases, 16), [1.0, 0.0, 1.0, 0.5], atol=1 / 16)


# --- recall ---------------------------------------------------------------------------------------------
def test_recall_picks_the_frame_that_saw_the_target_view():
    store = ViewStore(sink=3, fov_cell=20.0)
    store.place(2, (0.0, 0.0, 60.0))  # the sink
    yaws = [30 * i for i in range(1, 12)]  # one frame every 30°, frames 5, 8, ...
    for i, yaw in enumerate(yaws):
        store.place(5 + 3 * i, (float(yaw), 0.0, 60.0))
    store.place(5 + 3 * len(yaws), (300.0, 20.0, 40.0))  # the last block, far away
    start = 6 + 3 * len(yaws)  # the block after the last one (frames 36..38)
    target = np.array([[178.0, 0.0, 60.0], [181.0, 0.0, 60.0], [184.0, 0.0, 60.0]])  # the block looks at ~180°
    read = store.frames[store.attended(start, target, k=1, block_frames=3)].tolist()
    saw = 5 + 3 * yaws.index(180)
    assert read == [2, saw, start - 1]  # sink, the frame that saw 180°, the last block
    two = store.frames[store.attended(start, target, k=2, block_frames=3)].tolist()
    assert saw in two and 5 + 3 * yaws.index(150) not in two  # 210° is nearer than 150° to 181° (mean of 178..184)
    store.place(start + 2, (180.0, 0.0, 60.0))  # a newer frame of the same view replaces the older one
    assert saw not in store.frames.tolist() and store.size == 2 + len(yaws)


def test_cache_recalls_per_world_and_pads_the_shorter_store():
    cache = KVCache(CacheConfig("mag-recall", recall=1, sink=3), depth=2)
    keys = lambda b: [torch.full((2, 1, 3, 1, 2), float(b)) for _ in range(2)]  # noqa: E731  (B, H, T, N, hd)
    poses = {0: (0.0, 0.0, 60.0), 1: (90.0, 0.0, 60.0), 2: (180.0, 0.0, 60.0), 3: (270.0, 0.0, 60.0)}
    for b in range(4):  # world 0 turns, world 1 holds still at 0°
        pose = torch.tensor([[poses[b]] * 3, [poses[0]] * 3], dtype=torch.float32)
        cache.append(keys(b), keys(b), list(range(3 * b, 3 * b + 3)), poses=pose)
    assert [s.size for s in cache.stores] == [4, 2] and cache.attended_counts() == [3, 2]
    target = torch.tensor([[[92.0, 0.0, 60.0]] * 3, [[0.0, 0.0, 60.0]] * 3])
    k, v, frames, valid = cache.recalled(12, target)
    assert frames.tolist() == [[2, 5, 11], [2, 11, 12]] and valid.tolist() == [[True] * 3, [True, True, False]]
    assert k[0][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 3.0]  # the key/values of those frames
    assert cache.frames() == 3 and cache.stored_frames() == 4
    assert cache.stored_bytes() == 6 * cache.bytes() / 5  # 6 stored frames, 5 attended (all worlds)


def test_store_stays_at_its_bound_on_a_long_pose_sequence():
    bound = store_bound(20.0)
    assert bound == 1 + 24 * 7 * 4 == 673  # the sink + 24 yaw x 7 pitch x 4 fov cells
    lattice = np.array([(y, p, f) for f in range(30, 91, 10) for p in range(-30, 31, 10) for y in range(7, 367, 15)],
                       dtype=float)  # every pose the env's actions reach from yaw 7° (1,176)
    poses = np.concatenate([lattice, lattice[::-1]] * 5)  # 11,760 blocks sweeping the whole world 10 times
    store = ViewStore(sink=3, fov_cell=20.0)
    store.place(2, (7.0, 0.0, 60.0))
    sizes = np.array([store.place(3 * b + 5, p) is not None and store.size for b, p in enumerate(poses)])
    assert sizes.max() == bound and (sizes[len(lattice):] == bound).all()  # full after one sweep, never more
    newest = {tuple(k): 3 * b + 5 for b, k in enumerate(view_keys(poses, 20.0).tolist())}
    assert sorted(store.frames.tolist()[1:]) == sorted(newest.values())  # the newest frame of each view is kept
    walk_store = ViewStore(sink=3, fov_cell=20.0)
    for b, p in enumerate(walk(10_000)):  # a random walk with the env's actions stays under the bound too
        walk_store.place(3 * b + 5, p)
    assert walk_store.size <= bound - 1


def test_kv_cache_store_is_bounded_and_attends_a_constant_set():
    cache = KVCache(CacheConfig("mag-recall", recall=4), depth=1)
    poses = torch.tensor(walk(1_500, seed=1), dtype=torch.float32)
    kv = [torch.zeros(1, 1, 3, 1, 2)]
    for b, p in enumerate(poses):
        cache.append(kv, kv, list(range(3 * b, 3 * b + 3)), poses=p.expand(1, 3, 3))
        if b >= 50:
            assert cache.frames() == 1 + 1 + 4  # sink + last block + K
    assert cache.stored_frames() <= store_bound(20.0)
    assert cache.stored_bytes() == cache.stored_frames() * 2 * 2 * 4  # keys + values, 2 floats each


# --- training pass == run time ---------------------------------------------------------------------------
def recall_models(**cfg):
    tc = micro_config()
    return (perturbed(Generator(GeneratorConfig(transformer=tc, **cfg)), 0).eval(),
            perturbed(MemoryModel(MemoryConfig(transformer=tc)), 1).eval())


@pytest.mark.parametrize("policy,cfg", [("mag-recall", {"recall": 1}), ("mag-recall", {"recall": 2}),
                                        ("mag-ring", {"ring": 1}), ("mag-ring", {"ring": 2})])
def test_parallel_training_pass_equals_cached_generation(policy, cfg):
    """write_clip + reader_mask over a whole clip (held_frames: the store replayed on the clip's poses) equals generation
    block by block from the run-time cache, with non-contiguous recalled frames and a padded world."""
    gen, mem = recall_models(**cfg)
    tc, blocks = gen.cfg.transformer, 6
    x0, t, pose, text = random_inputs(tc, 2, 3 * blocks)
    pose[1] = pose[1, :1]  # world 1 holds still: one view, a smaller store than world 0's
    x_t, t = torch.randn_like(x0), t[:, ::3].repeat_interleave(3, 1)
    index = torch.arange(21, 21 + 3 * blocks)
    config = gen.cfg.cache_config(policy)
    with torch.no_grad():
        held = held_frames(config, 3 * blocks, 3, pose)
        clip = write_clip(mem, x0, pose, text, config, index)
        mask = reader_mask(held, 3, tc.tokens_per_frame)
        parallel = gen(x_t, t, pose, text, clip, frame_index=index, mask=mask).prediction
        live = gen.new_cache(policy)
        for b in range(blocks):
            s = slice(3 * b, 3 * b + 3)
            torch.testing.assert_close(gen(x_t[:, s], t[:, s], pose[:, s], text, live).prediction, parallel[:, s],
                                       atol=2e-5, rtol=1e-4)
            write_block(mem, x0[:, s], pose[:, s], text, live)
    last = held[0, -1] if held.dim() == 3 else held[-1]
    read = torch.nonzero(last).flatten().tolist()
    assert read[0] == 2 and read[-1] == 3 * blocks - 4 and len(read) < blocks  # sink ... last block, with a gap
    if policy == "mag-recall":
        assert held[1, -1].sum() == 2  # the still world: sink + the one stored view (the last block)


def test_training_held_set_is_what_the_run_time_cache_reads(monkeypatch):
    """The frames each block attends to in training (recall_held on the clip's poses) are the frames the run-time
    cache recalls for the same clip, block by block."""
    poses = torch.tensor(np.concatenate([walk(8, seed=5), walk(8, seed=5)[::-1]]), dtype=torch.float32)  # out and back
    poses = poses[:, None].expand(-1, 3, -1).reshape(1, -1, 3).clone()  # (1, 48, 3): blocks of 3 equal poses
    cache = KVCache(CacheConfig("mag-recall", recall=2), depth=1)
    held = recall_held(poses, 3, 1, 3, 2, 20.0)
    kv = [torch.zeros(1, 1, 3, 1, 2)]
    for b in range(16):
        s = slice(3 * b, 3 * b + 3)
        if b:
            frames = cache.recalled(3 * b, poses[:, s])[2]
            assert frames[0].tolist() == torch.nonzero(held[0, 3 * b]).flatten().tolist(), b
        cache.append(kv, kv, list(range(3 * b, 3 * b + 3)), poses=poses[:, s])
    assert any(torch.nonzero(held[0, 3 * b]).flatten().diff().max() > 3 for b in range(9, 16))  # non-contiguous recalls


# --- WorldModel: batch == singles, snapshots, errors -----------------------------------------------------
@pytest.fixture(scope="module")
def parts():
    gen, mem = recall_models(recall=1)
    ae = Autoencoder(AutoencoderConfig(latent_channels=gen.cfg.transformer.latent_channels, channels=[8, 8, 8], groups=4))
    return gen, mem, ae


def world(parts, memory="mag-recall") -> WorldModel:
    gen, mem, ae = parts
    return WorldModel(gen, mem, ae, HashingTextEncoder(16), memory=memory, device="cpu")


def blocks_of(yaws: list[list[float]]) -> np.ndarray:
    """(N, B, 3, 3) poses: world n's block b looks at yaws[n][b]."""
    return np.array([[[[y, 0.0, 60.0]] * 3 for y in row] for row in yaws], dtype=np.float32)


def test_batch_of_recall_worlds_equals_single_worlds(parts):
    yaws = [[0, 90, 180, 270, 90, 180], [0, 0, 0, 0, 0, 0], [0, 180, 0, 180, 0, 180]]
    poses = blocks_of(yaws)
    frames = np.random.default_rng(0).integers(0, 256, (3, 3, 32, 32, 3), dtype=np.uint8)
    batch = world(parts)
    batch.start(frames, poses[:, 0], ["a", "b", "c"], seeds=[1, 2, 3])
    for b in (1, 2, 3):
        batch.memorize(frames, poses[:, b])
    got = [batch.generate(poses[:, b], ["a", "b", "c"]).latents for b in (4, 5)]
    for i in range(3):
        one = world(parts)
        one.start(frames[i:i + 1], poses[i:i + 1, 0], ["abc"[i]], seeds=[1 + i])
        for b in (1, 2, 3):
            one.memorize(frames[i:i + 1], poses[i:i + 1, b])
        for b, ref in zip((4, 5), got):
            torch.testing.assert_close(one.generate(poses[i:i + 1, b], ["abc"[i]]).latents, ref[i:i + 1],
                                       atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("memory", ["mag-recall", "mag-ring"])
def test_snapshot_restores_the_store_bit_for_bit(parts, memory):
    poses = blocks_of([[0, 90, 180, 270, 0, 90, 180, 270, 45, 0]])
    frames = np.random.default_rng(1).integers(0, 256, (1, 3, 32, 32, 3), dtype=np.uint8)
    w = world(parts, memory)
    w.start(frames, poses[:, 0], ["s"])
    for b in range(1, 5):
        w.step(poses[:, b], ["s"])
    snap, stored = w.snapshot(), w.stored_bytes()
    first = [w.generate(poses[:, b], ["s"]).latents for b in range(5, 10)]
    w.restore(snap)
    assert w.stored_bytes() == stored
    again = [w.generate(poses[:, b], ["s"]).latents for b in range(5, 10)]
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    fresh = world(parts, memory)
    fresh.start(frames, poses[:, 0], ["s"])
    fresh.restore(snap)  # into another world model
    assert torch.equal(fresh.generate(poses[:, 5], ["s"]).latents, first[0])


def test_bad_policy_names_are_clear_errors(parts):
    with pytest.raises(ValueError, match="unknown memory policy 'mag_recall'.*mag-recall"):
        world(parts, memory="mag_recall")
    with pytest.raises(ValueError, match="unknown cache policy 'recall'"):
        CacheConfig("recall")
    with pytest.raises(ValueError, match="needs the clip's poses"):
        held_frames(CacheConfig("mag-recall"), 9, 3)
    cache = KVCache(CacheConfig("mag-recall"), depth=1)
    with pytest.raises(ValueError, match="needs poses"):
        cache.append([torch.zeros(1, 1, 3, 1, 2)], [torch.zeros(1, 1, 3, 1, 2)], [0, 1, 2])

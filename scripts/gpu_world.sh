#!/usr/bin/env bash
# Issue 11 on a lent GPU, in one go (~8 minutes on one H100/H200: training budgets 2 + 2 + 3 min, then the bench; a device call allows 10): the whole recognisable-world stack trained
# from scratch at a size the 2-core CPU cannot afford, then `magworld bench world` on it.
#   1. autoencoder 64x64x3 <-> 16x16x8 latents, wider and deeper than the CPU one (channels 64,128; 2 res blocks)
#   2. memory model, `small` preset (dim 256, depth 8) with 2x2 latent patches: 64 tokens per frame (the tiny
#      preset has 16) — on the CPU the memory model, not the autoencoder, is what caps quality now
#   3. reproject generator on it (8-block leave-and-return clips, history term, self-forcing 0.3, mag-recall mixed in)
#   4. bundle the three into OUT/weights (loadable with WorldModel.from_checkpoint(OUT/weights), and the benches'
#      bench.checkpoint=OUT/weights) and run the world bench -> OUT/bench-world, look PNGs in OUT/media
# Every stage stops at its time budget (max_minutes) and exports; logs are JSON lines in each run folder.
#
#   scripts/gpu_world.sh OUT           # on the GPU machine
#   scripts/gpu_world.sh OUT --smoke   # a few steps of everything on the CPU (~3 minutes): check it runs first
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: scripts/gpu_world.sh OUT [--smoke]}"
mode="${2:-}"

if [[ "$mode" == "--smoke" ]]; then
  dev=cpu prec=fp32 preset=small
  ae="autoencoder.run.steps=2 autoencoder.run.batch_size=4 autoencoder.run.warmup_steps=1 autoencoder.eval_per_style=2 autoencoder.stats_frames=8"
  mem="memory.run.steps=2 memory.run.batch_size=2 memory.run.warmup_steps=1 memory.eval_clips=2"
  gen="generator.run.steps=2 generator.run.batch_size=2 generator.run.warmup_steps=1 generator.eval_clips=2"
  bench="bench.styles=[indoor] bench.carry_episodes=1 bench.drift_episodes=1 bench.drift_steps=20"
elif [[ -z "$mode" ]]; then
  dev=cuda prec=bf16 preset=small
  ae="autoencoder.run.steps=6000 autoencoder.run.batch_size=128 autoencoder.run.warmup_steps=200 autoencoder.run.max_minutes=2"
  mem="memory.run.steps=3000 memory.run.batch_size=32 memory.run.max_minutes=2 memory.run.eval_every=1000"
  gen="generator.run.steps=3000 generator.run.batch_size=32 generator.run.max_minutes=3 generator.run.eval_every=1000"
  bench=""
else
  echo "unknown option $mode (use --smoke or nothing)" >&2; exit 2
fi
run="run.device=$dev run.precision=$prec run.resume=true"
prefix() { local stage=$1; shift; for kv in $run; do printf '%s.%s ' "$stage" "$kv"; done; }
shape() { echo "+$1.model.transformer.latent_size=16 +$1.model.transformer.latent_channels=8 +$1.model.transformer.patch_size=2"; }

magworld train stage=autoencoder $(prefix autoencoder) $ae autoencoder.run.out_dir="$out/autoencoder" \
  'autoencoder.model.channels=[64,128]' autoencoder.model.latent_channels=8 autoencoder.model.res_blocks=2
magworld train stage=memory "model@memory.model.transformer=$preset" $(shape memory) $(prefix memory) $mem \
  memory.run.out_dir="$out/memory" memory.autoencoder="$out/autoencoder/autoencoder.safetensors"
magworld train stage=generator "model@generator.model.transformer=$preset" $(shape generator) $(prefix generator) $gen \
  generator.run.out_dir="$out/generator" generator.autoencoder="$out/autoencoder/autoencoder.safetensors" \
  generator.memory_model="$out/memory/memory.safetensors" generator.init=memory generator.model.reproject=true \
  generator.blocks=8 generator.self_forcing=0.3 generator.eval_context_blocks=2 \
  generator.policies.mag=0.5 generator.policies.full=0.15 generator.policies.window=0.15 generator.policies.mag-recall=0.2
magworld weights bundle weights.run_dir="$out/generator" weights.weights_dir="$out/weights" \
  weights.autoencoder="$out/autoencoder" weights.memory="$out/memory"
magworld bench world bench.checkpoint="$out/weights" bench.device="$dev" bench.out_dir="$out/bench-world" \
  bench.media_dir="$out/media" $bench
echo "done: weights in $out/weights, world bench in $out/bench-world, look PNGs in $out/media"

"""The MAG world model's rows in the benchmarks: one per memory policy (built lazily, on first use)."""

from .policies import register_policy

register_policy("mag", "magworld.model.pipeline:bench_policy")  # compressed cache, the whole history
register_policy("window", "magworld.model.pipeline:bench_policy")  # first block (sink) + last block
register_policy("full", "magworld.model.pipeline:bench_policy")  # every frame (uncompressed upper bound)

"""The ``magworld`` console script: ``magworld <command> [subcommand] [hydra overrides...]``.

Every command is a thin hydra entry point: the table below maps it to a config in the installed
``magworld.configs`` package and to the function that runs it. The function receives the composed config
and builds its typed dataclass config from it (modules never keep a raw ``DictConfig``). This is the top
floor (``magworld.apps``): its table may name any layer below; the targets are imported only when their
command runs, so ``magworld --help`` stays instant.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable

COMMANDS: dict[str, tuple[str, str, str]] = {
    # command: (config name, "module:function", one-line help)
    "play": ("play", "magworld.apps.play:main", "play MAGWorld with the keyboard in a pygame window"),
    "rollout": ("rollout", "magworld.apps.rollout:main", "run one headless episode with a scripted policy -> mp4 + JSON"),
    "train": ("train", "magworld.train:main", "train a model stage: stage=autoencoder|memory|generator|teacher|dmd"),
    "bench render": ("bench_render", "magworld.bench.render:main", "frames/s of the ground-truth renderer"),
    "bench compression": ("bench_compression", "magworld.bench.compression:main", "memory-model compression ratio ablation"),
    "bench revisit": ("bench_revisit", "magworld.bench.mag_bench:main", "MAG-Bench revisit consistency"),
    "bench compare": ("bench_compare", "magworld.bench.mag_bench:compare_main", "paired differences between revisit bench rows"),
    "bench world": ("bench_world", "magworld.bench.world:main", "is the world recognisable: carry, drift, look PNGs"),
    "bench speed": ("bench_speed", "magworld.apps.speed:main", "env step speed and cache memory"),
    "bench soak": ("bench_soak", "magworld.apps.speed:soak_main", "one env for 10,000 steps: resident memory, NaN, errors"),
    "agent train": ("agent_train", "magworld.agents.train:main", "train an agent (stable-baselines3 PPO)"),
    "agent eval": ("agent_eval", "magworld.agents.evaluate:main", "evaluate a baseline or a trained agent"),
}


def _usage() -> str:
    lines = ["usage: magworld <command> [key=value ...]   (hydra overrides; add --cfg job to print the config)", "", "commands:"]
    lines += [f"  {name:<20} {info[2]}" for name, info in COMMANDS.items()]
    return "\n".join(lines)


def _resolve(target: str) -> Callable:
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    """``["bench", "render", "x=1"]`` -> ``("bench render", ["x=1"])``; raises ``SystemExit`` with usage."""
    for length in (2, 1):
        name = " ".join(argv[:length])
        if len(argv) >= length and name in COMMANDS:
            return name, argv[length:]
    known = ", ".join(COMMANDS)
    given = " ".join(argv[:2]) if argv else "(nothing)"
    raise SystemExit(f"magworld: unknown command {given!r}; known commands: {known}\n\n{_usage()}")


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    name, overrides = split_command(argv)
    config_name, target, _ = COMMANDS[name]
    function = _resolve(target)

    @hydra.main(version_base="1.3", config_path="pkg://magworld.configs", config_name=config_name)
    def _entry(cfg) -> None:
        function(cfg)

    sys.argv = [f"magworld {name}", *overrides]
    _entry()


if __name__ == "__main__":
    main()

"""The ``magworld`` console script: ``magworld <command> [subcommand] [<section>.<key>=value ...]``. Each command is a
hydra entry point: :data:`COMMANDS` maps it to its config in ``magworld.configs``, its function (imported only when
it runs, so ``--help`` stays instant) and its *section*, the config node holding all its options."""

from __future__ import annotations

import pkgutil
import sys
from typing import NamedTuple

from magworld.config import build


class Command(NamedTuple):
    config: str  # config name in magworld.configs
    target: str  # "module:function" receiving the built <section> config (train: the composed one)
    help: str  # one line
    section: str  # the config node holding every option: <section>.<key>=value


COMMANDS: dict[str, Command] = {
    "play": Command("play", "magworld.apps.play:run", "play MAGWorld with the keyboard in a pygame window", "play"),
    "rollout": Command("rollout", "magworld.apps.rollout:run",
                       "run one headless episode with a scripted policy -> mp4 + JSON", "rollout"),
    "train": Command("train", "magworld.train:main",
                     "train a model stage: stage=autoencoder|memory|generator|teacher|dmd", "<stage>"),
    "bench render": Command("bench_render", "magworld.bench.render:run", "frames/s of the ground-truth renderer", "bench"),
    "bench compression": Command("bench_compression", "magworld.bench.compression:run",
                                 "memory-model compression ratio ablation", "bench"),
    "bench revisit": Command("bench_revisit", "magworld.bench.mag_bench:run", "MAG-Bench revisit consistency", "bench"),
    "bench compare": Command("bench_compare", "magworld.bench.mag_bench:compare",
                             "paired differences between revisit bench rows", "bench"),
    "bench world": Command("bench_world", "magworld.bench.world:run",
                           "is the world recognisable: carry, drift, look PNGs", "bench"),
    "bench invent": Command("bench_invent", "magworld.bench.invention:run",
                            "invented content vs the simulator: feature FD and detail ratio, val/test splits", "bench"),
    "bench speed": Command("bench_speed", "magworld.apps.speed:run", "env step speed and cache memory", "bench"),
    "bench reward": Command("bench_reward", "magworld.apps.reward_bench:run",
                            "does the revisit reward measure memory? scripted policies, default memory vs window vs simulator",
                            "bench"),
    "bench soak": Command("bench_soak", "magworld.apps.speed:soak",
                          "one env for 10,000 steps: resident memory, NaN, errors", "bench"),
    "agent train": Command("agent_train", "magworld.agents.train:run",
                           "train an agent (stable-baselines3 PPO): agent=ppo|ppo_state", "agent"),
    "agent eval": Command("agent_eval", "magworld.agents.evaluate:run",
                          "evaluate a baseline or a trained agent: agent=random|sweep|loop|coverage|ppo|ppo_state", "agent"),
    "weights bundle": Command("weights_bundle", "magworld.apps.weights:bundle_main",
                              "copy a generator run (and its autoencoder, memory) into a weights folder + manifest", "weights"),
    "weights blend": Command("weights_blend", "magworld.apps.weights:blend_main",
                             "weight-space blend of two generator exports (WiSE-FT)", "weights"),
    "weights export": Command("weights_export", "magworld.apps.weights:export_main",
                              "the generator of a stage=dmd checkpoint as a generator export (bench a run mid-way)",
                              "weights"),
}
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(name.split()[0] for name in COMMANDS if " " in name))

OVERRIDE_STYLE = """options (one style for every command):
  <section>.<key>=value     an option of the command; <section> is its config node, listed beside each command
                            (magworld rollout rollout.policy=coverage rollout.style=city, magworld play play.max_ticks=100)
  <group>=<preset>          pick a preset file (agent=ppo_state, stage=generator, bench/revisit=models)
  +<section>.<key>=value    add a key the config lacks (+agent.env.kwargs.observation=state)
  --cfg job                 print the composed config instead of running; <command> --help: hydra's help"""


def _listing(names: list[str]) -> list[str]:
    return [f"  {name:<18} {COMMANDS[name].section + '.*':<11} {COMMANDS[name].help}" for name in names]


def usage(group: str | None = None) -> str:
    """``magworld --help`` (every command), or one group's commands (``magworld bench --help``)."""
    names = [name for name in COMMANDS if group in (None, name.split()[0])]
    sections = {COMMANDS[name].section for name in names}
    section = sections.pop() if len(sections) == 1 else "<section>"
    head = [f"usage: magworld {group + ' ' if group else ''}<command> [{section}.<key>=value ...]", "",
            f"{(group + ' ' if group else '') + 'commands:':<21}section"]
    return "\n".join([*head, *_listing(names), "", OVERRIDE_STYLE])


def split_command(argv: list[str]) -> tuple[str, list[str]]:
    """``["bench", "render", "x=1"]`` -> ``("bench render", ["x=1"])``; raises ``SystemExit`` with usage."""
    for length in (2, 1):
        name = " ".join(argv[:length])
        if len(argv) >= length and name in COMMANDS:
            return name, argv[length:]
    if argv and argv[0] in GROUPS:
        given = " ".join(argv[:2]) if len(argv) > 1 else argv[0]
        raise SystemExit(f"magworld: unknown command {given!r}\n\n{usage(argv[0])}")
    given = " ".join(argv[:2]) if argv else "(nothing)"
    raise SystemExit(f"magworld: unknown command {given!r}; known commands: {', '.join(COMMANDS)}\n\n{usage()}")


HELP = ("-h", "--help", "help")


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in HELP:
        print(usage())
        return
    if argv[0] in GROUPS and (len(argv) == 1 or argv[1] in HELP):
        print(usage(argv[0]))
        return
    name, overrides = split_command(argv)
    command = COMMANDS[name]
    function = pkgutil.resolve_name(command.target)

    @hydra.main(version_base="1.3", config_path="pkg://magworld.configs", config_name=command.config)
    def _entry(cfg) -> None:
        function(cfg if command.section == "<stage>" else build(cfg[command.section]))

    sys.argv = [f"magworld {name}", *overrides]
    _entry()


if __name__ == "__main__":
    main()

"""Every figure in README.md comes from a committed result (``python scripts/readme_tables.py``).

Two checks:

1. Each marked block (``<!-- table:NAME -->`` … ``<!-- /table -->``) equals what ``scripts/readme_tables.py`` renders
   from its committed JSON, and every table it knows is in the README.
2. Outside the blocks, no measured figure: every number in the README's prose (code excluded, except the comments
   of fenced code) must be a constant of the design listed in ``CONSTANTS`` below. The list holds *values*, not
   positions, so rewording the prose never breaks the test; a new number does, until it is either rendered in a
   block from a results file or added here as a constant with its reason. Decimal figures (``22.47``) and
   thousands (``2,055``) outside the blocks are never constants: the check rejects them whatever the list says.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import readme_tables as readme

ROOT = Path(__file__).resolve().parents[2]

# Numbers that may stand in the README's prose: constants of the design, not measurements.
CONSTANTS = {
    "0", "1", "2", "3", "4", "5", "6", "7",  # action indices of the Discrete(7) table
    "10", "15", "30", "60", "90",  # action deltas and limits (degrees), view cells 15° x 10°, reward PSNR range
    "360",  # degrees around a world
    "64", "128", "256",  # frame sizes, resolutions, transformer width
    "8", "16",  # latent shape 16x16x8, tokens per frame, GPU/batch counts in the torchrun example
    "100",  # PSNR cap (dB) of identical frames
    "200", "1000",  # the registered episode limit; a longer one in the example
    "95",  # bootstrap interval (%)
    "0.0", "1.0",  # reward weight defaults
    "29500",  # torchrun rendezvous port in the example
    "50",  # the loop task's registered episode limit
    "60000",  # PPO timesteps in the agent-training example command
}


@pytest.fixture(scope="module")
def text() -> str:
    return (ROOT / readme.README).read_text()


def test_readme_tables_match_committed_results(text: str) -> None:
    blocks, tables = readme.blocks(text), readme.rendered(ROOT)
    missing = sorted(set(tables) - set(blocks))
    assert not missing, f"README has no block for {missing}: add <!-- table:NAME --> ... <!-- /table -->"
    stale = [name for name in tables if blocks[name] != tables[name]]
    assert not stale, f"README tables {stale} differ from their results files: run python scripts/readme_tables.py"
    assert readme.update(text, tables) == text


def test_no_figure_outside_the_tables(text: str) -> None:
    strays = readme.stray_numbers(text)
    measured = sorted({n for n in strays if "," in n or ("." in n and n not in CONSTANTS)})
    assert not measured, f"figures outside the README's rendered tables: {measured}"
    unknown = sorted(set(strays) - CONSTANTS, key=float)
    assert not unknown, (f"numbers {unknown} in the README's prose: render them from a results file in a marked table "
                         f"(scripts/readme_tables.py), or, if they are constants of the design, add them to CONSTANTS "
                         f"in {Path(__file__).name} with the reason")


def test_stray_numbers_sees_figures_and_skips_code_blocks_and_names() -> None:
    text = ("MAGWorld-v0 with all-MiniLM-L6-v2 on x86_64 in bf16, 3D RoPE; `torch==2.13.0` and `seed=1000`.\n"
            "[link](docs/notes/speed-2026-12-02.md) <!-- a comment 12.5 -->\n"
            "<!-- table:world -->\n| 32.76 |\n<!-- /table -->\n"
            "```bash\nmagworld bench speed bench.history_blocks=20  # 39.16 frames/s\n```\n"
            "The world runs 51.8 frames/s, 3.1x faster, 2,055 frames, yaw -15° on 64x64 frames.\n")
    assert readme.stray_numbers(text) == ["39.16", "51.8", "3.1", "2,055", "15", "64"]


def test_update_replaces_blocks_and_refuses_unknown_tables() -> None:
    text = "a\n<!-- table:t -->\nold\n<!-- /table -->\nb\n"
    assert readme.update(text, {"t": "new\n"}) == "a\n<!-- table:t -->\nnew\n<!-- /table -->\nb\n"
    with pytest.raises(ValueError, match="does not render"):
        readme.update(text, {"u": "x\n"})

"""The README's style grid, made by the project itself: ``python -m magworld.apps.media [--out-dir docs/media]`` writes
``styles.png`` (one row per style, one column per view direction). The seed is fixed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from magworld.world import STYLE_NAMES, Pose, make_scene

GAP = 2  # pixels between panels
LABEL_HEIGHT = 14


@dataclass
class MediaConfig:
    out_dir: str = "docs/media"
    seed: int = 3
    grid_yaws: list[float] = field(default_factory=lambda: [0.0, 60.0, 120.0, 180.0, 240.0, 300.0])
    grid_resolution: int = 128


def side_by_side(panels: list[np.ndarray], gap: int = GAP, fill: int = 16) -> np.ndarray:
    """Equal-height (H, W, 3) images left to right with ``gap`` pixels of grey ``fill`` (dark) between them."""
    spacer = np.full((panels[0].shape[0], gap, 3), fill, dtype=np.uint8)
    return np.concatenate([part for panel in panels for part in (spacer, panel)][1:], axis=1)


def labelled(image: np.ndarray, labels: list[str], panel_width: int) -> np.ndarray:
    """``image`` with a dark strip on top naming each panel."""
    from PIL import Image, ImageDraw, ImageFont

    strip = Image.new("RGB", (image.shape[1], LABEL_HEIGHT), (16, 16, 16))
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=11)
    for i, label in enumerate(labels):
        draw.text((i * (panel_width + GAP) + 3, 1), label, fill=(235, 235, 235), font=font)
    return np.concatenate([np.asarray(strip), image], axis=0)


def write_styles_grid(cfg: MediaConfig, out_dir: Path) -> Path:
    """One row per style, one column per yaw in ``grid_yaws`` (pitch 0°, fov 60°)."""
    from PIL import Image

    rows = []
    for style in STYLE_NAMES:
        scene = make_scene(cfg.seed, style)
        views = [scene.render(Pose(yaw, 0.0, 60.0), cfg.grid_resolution) for yaw in cfg.grid_yaws]
        rows.append(labelled(side_by_side(views), [style] + [""] * (len(views) - 1), cfg.grid_resolution))
    header = labelled(np.full((0, rows[0].shape[1], 3), 16, np.uint8),
                      [f"yaw {int(yaw)}°" for yaw in cfg.grid_yaws], cfg.grid_resolution)
    grid = np.concatenate([header, *rows], axis=0)
    path = out_dir / "styles.png"
    Image.fromarray(grid).save(path, optimize=True)
    return path


def make_media(cfg: MediaConfig) -> list[Path]:
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_styles_grid(cfg, out_dir)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=MediaConfig.out_dir)
    parser.add_argument("--seed", type=int, default=MediaConfig.seed)
    args = parser.parse_args(argv)
    for path in make_media(MediaConfig(out_dir=args.out_dir, seed=args.seed)):
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()

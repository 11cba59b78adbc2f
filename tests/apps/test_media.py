"""The README media maker (``python -m magworld.apps.media``), at a tiny size."""

import pytest
from PIL import Image

from magworld.apps.media import MediaConfig, make_media


def test_readme_media_script_smoke(tmp_path):
    gif, grid = make_media(MediaConfig(out_dir=str(tmp_path), steps=2, grid_yaws=[0.0, 180.0], grid_resolution=32))
    with Image.open(gif) as image:
        assert image.size == (4 * 128 + 3 * 2, 128 + 14)
        durations = []
        for index in range(image.n_frames):  # identical neighbours (the still start block) are merged
            image.seek(index)
            durations.append(image.info["duration"])
        assert sum(durations) == pytest.approx(3 * 3 * 1000 / 12, rel=0.05)  # 9 frames at ~12 fps (GIF: 10 ms ticks)
    with Image.open(grid) as image:
        assert image.size == (2 * 32 + 2, 14 + 4 * (14 + 32))

"""The README's style grid (``python -m magworld.apps.media``), at a tiny size."""

from PIL import Image

from magworld.apps.media import MediaConfig, make_media


def test_readme_media_script_smoke(tmp_path):
    (grid,) = make_media(MediaConfig(out_dir=str(tmp_path), grid_yaws=[0.0, 180.0], grid_resolution=32))
    with Image.open(grid) as image:
        assert image.size == (2 * 32 + 2, 14 + 4 * (14 + 32))

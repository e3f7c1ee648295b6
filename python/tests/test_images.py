"""Images in Python: numpy cells equal to PIL's decoding, PIL on request,
numpy written back as images, thumbnails in notebooks."""

import base64
import html
import re

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image as PILImage

import rookery
from conftest import DATA


def _write_pngs(folder):
    rng = np.random.default_rng(7)
    shapes = {"rgb": (37, 53, 3), "grey": (20, 31), "rgba": (16, 9, 4), "tiny": (2, 1, 3)}
    written = {}
    for name, shape in shapes.items():
        pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
        PILImage.fromarray(pixels).save(folder / f"{name}.png")
        written[name] = pixels if pixels.ndim == 3 else pixels[:, :, None]
    return written


def test_png_cells_equal_pil_exactly(ctx, tmp_path):
    written = _write_pngs(tmp_path)
    frame = ctx.sql(f"SELECT name, image FROM images('{tmp_path}') ORDER BY name")
    result = frame.to_pandas()
    assert sorted(result["name"]) == sorted(written)
    for name, image in zip(result["name"], result["image"]):
        assert isinstance(image, rookery.Image) and isinstance(image, np.ndarray)
        assert image.dtype == np.uint8
        expected = np.asarray(PILImage.open(tmp_path / f"{name}.png"))
        if expected.ndim == 2:
            expected = expected[:, :, None]
        np.testing.assert_array_equal(np.asarray(image), expected)
        np.testing.assert_array_equal(np.asarray(image), written[name])
        assert image.to_pil().size == (image.width, image.height)


def test_jpeg_cells_match_pil_within_decoder_differences(ctx):
    frame = ctx.sql(f"SELECT name, image FROM images('{DATA / 'Train' / '*.jpg'}') ORDER BY name LIMIT 3")
    for name, image in zip(*frame.to_pandas()[["name", "image"]].T.values):
        decoded = np.asarray(PILImage.open(DATA / "Train" / f"{name}.jpg").convert("RGB")).astype(np.int16)
        ours = np.asarray(image).astype(np.int16)
        assert ours.shape == decoded.shape
        difference = np.abs(ours - decoded)
        # Decoders differ by IDCT and upsampling rounding, not in content.
        assert difference.mean() < 1.5, difference.mean()
        assert np.percentile(difference, 99) <= 8


def test_image_cells_share_the_engines_buffers(ctx, tmp_path):
    _write_pngs(tmp_path)
    table = ctx.sql(f"SELECT image FROM images('{tmp_path}') WHERE name = 'rgb'").to_arrow()
    cells = rookery.image_cells(table.column("image"))
    image = cells[0]
    assert not image.flags.writeable and not image.flags.owndata
    data = table.column("image").chunks[0].field("data")
    buffers = [b for b in data.buffers()[2:] if b is not None]
    start = image.__array_interface__["data"][0]
    assert any(b.address <= start < b.address + b.size for b in buffers), "the pixels were copied"
    # Arithmetic gives plain arrays; slicing keeps the pixels.
    assert type(image.astype(np.float32) * 2) is np.ndarray
    assert repr(image) == "Image(53x37, 3 channels)"


def test_numpy_images_written_back_as_an_image_column(ctx, tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, size=(12, 8, 3), dtype=np.uint8), rng.integers(0, 256, size=(5, 6), dtype=np.uint8), None]
    import pandas as pd

    ctx.register("made", pd.DataFrame({"name": ["a", "b", "c"], "image": images}))
    back = ctx.sql("SELECT name, image_width(image) AS w, image FROM made ORDER BY name").to_pandas()
    assert back["w"].tolist()[:2] == [8, 6]
    np.testing.assert_array_equal(back["image"][0], images[0])
    np.testing.assert_array_equal(back["image"][1][:, :, 0], images[1])
    assert back["image"][2] is None
    # ... and written as files by COPY.
    out = tmp_path / "written"
    ctx.sql(f"COPY (SELECT name, image FROM made WHERE image IS NOT NULL) TO '{out}' STORED AS IMAGES")
    np.testing.assert_array_equal(np.asarray(PILImage.open(out / "a.png")), images[0])
    with pytest.raises(TypeError, match="uint8"):
        rookery.images_to_arrow([np.zeros((2, 2), dtype=np.float32)])
    column = rookery.images_to_arrow([PILImage.new("RGB", (3, 2), (1, 2, 3))])
    assert column.type.field("data").type == pa.binary_view()


def test_repr_html_shows_thumbnails_escaped_and_bounded(ctx):
    ctx.register("notes", {"text": ["<script>alert(1)</script>", "x" * 10_000]})
    page = ctx.sql(
        f"SELECT name, image FROM images('{DATA / 'Train' / '*.jpg'}') ORDER BY name LIMIT 4"
    )._repr_html_()
    thumbnails = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(thumbnails) == 4
    for encoded in thumbnails:
        png = base64.b64decode(encoded)
        assert png.startswith(b"\x89PNG")
        import io

        assert max(PILImage.open(io.BytesIO(png)).size) <= 96
    text_page = ctx.sql("SELECT text FROM notes")._repr_html_()
    assert "<script>" not in text_page and html.escape("<script>") in text_page
    assert len(text_page) < 2_000
    many = ctx.sql("SELECT v FROM generate_series(1, 1000) t(v)")._repr_html_()
    assert many.count("<tr>") == 11 and "more not shown" in many


def test_image_repr_png(ctx):
    frame = ctx.sql(f"SELECT image FROM images('{DATA / 'Test'}') LIMIT 1")
    image = frame.to_pandas()["image"][0]
    png = image._repr_png_()
    assert png.startswith(b"\x89PNG")


def test_a_new_users_first_query(monkeypatch):
    """The issue's "done when": four thumbnails in Jupyter, numpy from pandas."""
    from conftest import REPO

    monkeypatch.chdir(REPO)
    frames = rookery.connect().sql("SELECT name, image FROM images('data/sealions/Train/') LIMIT 4")
    assert frames._repr_html_().count("data:image/png;base64,") == 4
    images = frames.to_pandas()["image"]
    assert len(images) == 4
    assert all(isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 for image in images)

"""Shared test setup: everything offline, every test with its own image store."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

from pixplan.tools.store import ImageStore


@pytest.fixture
def store(tmp_path, monkeypatch) -> ImageStore:
    """A fresh image store, also made the process default so tools called without config use it."""
    monkeypatch.setenv("PIXPLAN_STORE", str(tmp_path / "store"))
    return ImageStore(tmp_path / "store")


@pytest.fixture
def tool_config(store) -> dict:
    """The RunnableConfig that points tools at the test's store."""
    return {"configurable": {"store_dir": str(store.root)}}


@pytest.fixture(scope="session")
def make_ad():
    """Render an ad-like test image; returns (image, layout) with the pixel boxes of what was drawn.

    A real photograph (scikit-image's bundled photos) pasted on a warm vertical gradient, a solid band with a
    headline rendered in pixplan's font, and a dark caption under the band.
    """
    import numpy as np
    import skimage.data
    from PIL import Image, ImageDraw

    from pixplan.tools.text import load_font

    def make(
        photo: str = "coffee",
        headline: str = "SUMMER SALE",
        caption: str = "Only $9.99 this week",
        size: tuple[int, int] = (1000, 1000),
        band_color: tuple[int, int, int] = (30, 70, 50),
        headline_color: tuple[int, int, int] = (255, 220, 90),
    ):
        width, height = size
        ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
        top, bottom = np.array([235, 225, 200], np.float32), np.array([200, 170, 120], np.float32)
        canvas = np.broadcast_to((1 - ramp) * top + ramp * bottom, (height, width, 3))
        image = Image.fromarray(canvas.astype(np.uint8))
        photo_box = (int(0.22 * width), int(0.12 * height), int(0.78 * width), int(0.54 * height))
        picture = Image.fromarray(getattr(skimage.data, photo)()).convert("RGB")
        image.paste(picture.resize((photo_box[2] - photo_box[0], photo_box[3] - photo_box[1])), photo_box[:2])
        draw = ImageDraw.Draw(image)
        band_box = (0, int(0.72 * height), width, int(0.88 * height))
        draw.rectangle((band_box[0], band_box[1], band_box[2] - 1, band_box[3] - 1), fill=band_color)
        centre = (width // 2, (band_box[1] + band_box[3]) // 2)
        font = load_font(int(0.064 * height))
        draw.text(centre, headline, font=font, fill=headline_color, anchor="mm")
        headline_box = draw.textbbox(centre, headline, font=font, anchor="mm")
        caption_centre = (width // 2, int(0.94 * height))
        small = load_font(int(0.036 * height))
        draw.text(caption_centre, caption, font=small, fill=(40, 40, 40), anchor="mm")
        caption_box = draw.textbbox(caption_centre, caption, font=small, anchor="mm")
        layout = {"photo": photo_box, "band": band_box, "headline": headline_box, "caption": caption_box}
        return image, layout

    return make

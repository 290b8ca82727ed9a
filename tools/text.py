"""Text tools: replace the words of a text region, or add a headline or caption with automatic contrast."""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageFont

#: The bold sans-serif font used for all rendered text where Debian's fonts-dejavu-core is installed.
FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


@functools.lru_cache(maxsize=64)
def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A bold font at `size` pixels: DejaVu Sans Bold when present, else Pillow's scalable default font."""
    size = max(1, int(size))
    if FONT_PATH.exists():
        return ImageFont.truetype(str(FONT_PATH), size)
    return ImageFont.load_default(size)

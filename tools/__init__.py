"""pixplan.tools: image editing tools with region arguments, usable by any LangChain or LangGraph agent.

Importing this package loads Pillow, NumPy and OpenCV only; generative tools load torch and diffusers when
first used.
"""

from pixplan.tools.classical import (
    adjust_tone,
    blur,
    recolor,
    remove_object,
    replace_background,
    sharpen,
    stylize,
)
from pixplan.tools.regions import RegionArg, RegionCatalog, RegionError
from pixplan.tools.store import ImageError, ImageRef, ImageStore

#: Every classical tool, in the order a model sees them. Generative tools live in their own list, so that
#: importing this one never loads torch or diffusers.
TOOLS = [
    recolor,
    adjust_tone,
    replace_background,
    remove_object,
    stylize,
    blur,
    sharpen,
]

__all__ = [
    "TOOLS",
    "ImageError",
    "ImageRef",
    "ImageStore",
    "RegionArg",
    "RegionCatalog",
    "RegionError",
    "adjust_tone",
    "blur",
    "recolor",
    "remove_object",
    "replace_background",
    "sharpen",
    "stylize",
]

"""pixplan.tools: image editing tools with region arguments, usable by any LangChain or LangGraph agent.

Importing this package loads Pillow, NumPy and OpenCV only; generative tools load torch and diffusers when
first used.
"""

from pixplan.tools.calls import forbid_unknown_arguments
from pixplan.tools.classical import (
    adjust_tone,
    blur,
    recolor,
    remove_object,
    replace_background,
    sharpen,
    stylize,
)
from pixplan.tools.graphics import add_badge, add_icon
from pixplan.tools.perception import build_catalog, describe_catalog
from pixplan.tools.regions import RegionArg, RegionCatalog, RegionError
from pixplan.tools.store import ImageError, ImageRef, ImageStore
from pixplan.tools.text import add_text, replace_text

#: Every classical tool, in the order a model sees them. Generative tools live in their own list, so that
#: importing this one never loads torch or diffusers.
TOOLS = forbid_unknown_arguments([
    recolor,
    adjust_tone,
    replace_background,
    remove_object,
    stylize,
    blur,
    sharpen,
    replace_text,
    add_text,
    add_badge,
    add_icon,
])  # fmt: skip

__all__ = [
    "TOOLS",
    "ImageError",
    "ImageRef",
    "ImageStore",
    "RegionArg",
    "RegionCatalog",
    "RegionError",
    "add_badge",
    "add_icon",
    "add_text",
    "adjust_tone",
    "blur",
    "build_catalog",
    "describe_catalog",
    "recolor",
    "remove_object",
    "replace_background",
    "replace_text",
    "sharpen",
    "stylize",
]


def __getattr__(name: str):
    """`GENERATIVE_TOOLS` and `GROUNDING_TOOLS`, imported on first access (their modules load no torch either;
    torch, diffusers and transformers load when one of those tools first runs)."""
    if name == "GENERATIVE_TOOLS":
        from pixplan.tools.generative import GENERATIVE_TOOLS

        return GENERATIVE_TOOLS
    if name == "GROUNDING_TOOLS":
        from pixplan.tools.grounding import GROUNDING_TOOLS

        return GROUNDING_TOOLS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

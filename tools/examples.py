"""One example call per classical tool: what `pixplan tools demo` runs and what the standard tool tests give
the tools' input schemas.

A region written ``'@kind'`` (or ``'@kind#n'``) names the first (n-th) region of that kind in the image's
catalog, so one example fits any image; `resolve_region` turns it into a catalog id.
"""

from __future__ import annotations

from typing import Any

EXAMPLE_CALLS: dict[str, dict[str, Any]] = {
    "recolor": {"region": "@object", "hue_shift": 150},
    "adjust_tone": {"region": "whole", "brightness": 0.15, "saturation": 0.35, "warmth": 0.25},
    "replace_background": {
        "region": "background",
        "fill": "radial_gradient",
        "color": "#f1f8e9",
        "second_color": "#558b2f",
    },
    "remove_object": {"region": "@text#2"},
    "stylize": {"region": "whole", "style": "vintage"},
    "blur": {"region": "background", "radius": 6},
    "sharpen": {"region": "@object", "amount": 1.5},
    "replace_text": {"region": "@text", "text": "EVENING BLEND"},
    "add_text": {"region": [0.05, 0.0, 0.95, 0.1], "text": "Fresh from the farm"},
    "add_badge": {"region": [0.72, 0.04, 0.98, 0.3], "text": "NEW", "shape": "starburst", "color": "crimson"},
    "add_icon": {"region": [0.03, 0.04, 0.2, 0.21], "icon": "leaf"},
}


def resolve_region(region: Any, catalog: dict[str, Any]) -> Any:
    """'@kind' (or '@kind#n') is the first (n-th) catalog region of that kind; anything else stays.

    Without such a region the example falls back to the whole image (or, for text, a box along the bottom).
    """
    if not (isinstance(region, str) and region.startswith("@")):
        return region
    kind, _, number = region[1:].partition("#")
    matches = [entry["id"] for entry in catalog["regions"] if entry["kind"] == kind]
    index = int(number or 1) - 1
    if index >= len(matches):
        return "whole" if kind != "text" else [0.3, 0.88, 0.7, 0.98]
    return matches[index]


def example_call(name: str, catalog: dict[str, Any]) -> dict[str, Any]:
    """The example arguments of tool `name` (region included), with the region resolved on `catalog`."""
    call = dict(EXAMPLE_CALLS[name])
    call["region"] = resolve_region(call["region"], catalog)
    return call

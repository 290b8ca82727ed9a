"""Typed checklist checks: requirements that can be verified on pixels, deterministically and offline.

A checklist item is natural language ("the background reads as winter"); where the planner or a benchmark task
can give one, it also carries a typed check ("mean brightness of `background` in 0.65..1"). The metric judge
evaluates these checks; the LLM judge reads the text.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from pixplan.tools.regions import RegionArg


class TextContains(BaseModel):
    """OCR of the region reads at least one of the words (case-insensitive substring, spaces and punctuation
    ignored; one OCR slip forgiven in words of 5+ letters)."""

    type: Literal["text_contains"] = "text_contains"
    region: RegionArg
    any_of: list[str] = Field(min_length=1)


class ColorInRange(BaseModel):
    """A colour statistic of the region lies in [min, max].

    hue: circular mean hue in degrees 0..360 (min > max means the range wraps through 0);
    saturation: mean chroma / max(value, 0.5) in 0..1 (HSV saturation, but near-black is not saturated);
    brightness: mean luma in 0..1; warmth: mean (R - B) / 255 in -1..1.
    """

    type: Literal["color_in_range"] = "color_in_range"
    region: RegionArg
    stat: Literal["hue", "saturation", "brightness", "warmth"]
    min: float
    max: float


class Changed(BaseModel):
    """At least `min_fraction` of the region's pixels differ noticeably from the original image."""

    type: Literal["changed"] = "changed"
    region: RegionArg
    min_fraction: float = Field(default=0.2, ge=0, le=1)


class Preserved(BaseModel):
    """The region stays as in the original image: mean absolute difference at most `max_mean_diff` (0..1)."""

    type: Literal["preserved"] = "preserved"
    region: RegionArg
    max_mean_diff: float = Field(default=0.03, ge=0, le=1)


class TextAbsent(BaseModel):
    """OCR of the region reads none of the words (case-insensitive substring): old text is gone."""

    type: Literal["text_absent"] = "text_absent"
    region: RegionArg
    none_of: list[str] = Field(min_length=1)


class NewElement(BaseModel):
    """A compact new element (badge, icon, sticker, caption) appeared in the region.

    The pixels that changed and stand out from the region's edge colour, in connected shapes that each touch at
    most one side of the region (a repainted background or a global recolour runs to the edges, so it is not a
    new element), together cover `min_fraction` to `max_fraction` of the region; an element of several parts
    counts whole. Give a region with some margin around the element.
    """

    type: Literal["new_element"] = "new_element"
    region: RegionArg
    min_fraction: float = Field(default=0.03, ge=0, le=1)
    max_fraction: float = Field(default=0.9, ge=0, le=1)


Check = Annotated[
    TextContains | TextAbsent | ColorInRange | Changed | Preserved | NewElement, Field(discriminator="type")
]

#: Checks that ask for a change (the rest, `preserved`, ask that something stays).
CHANGE_CHECKS = ("text_contains", "text_absent", "color_in_range", "changed", "new_element")


class ChecklistItem(BaseModel):
    """One requirement of a plan's checklist."""

    id: str = Field(description="Short id such as 'c1'.")
    text: str = Field(description="The requirement in plain words, concrete enough to verify on the image.")
    check: Check | None = Field(default=None, description="A typed pixel check, where one applies.")

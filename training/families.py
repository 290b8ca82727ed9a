"""The benchmark's goal families, each written once: what a task asks, how it is checked, and how the
baselines answer it.

A family holds its goal phrasings; the words a new slogan must contain (the check) and slogans that contain
one (the ground truth); its background checks, each with the requirement's words; gradients that meet them;
the new element (an icon or a badge) the ad gains, if any; and what the keyword baselines do with it (the
goal pattern `rule_based` and `single_step` recognise it by, `rule_based`'s fixed recipe, `single_step`'s
global style). The generator (`pixplan.training.benchmark`) and the baselines (`pixplan.training.systems`)
read this table; `graph/` never does (a test checks that none of it reaches the agent).

To add a family: one more `Family(...)` in `FAMILIES`, then bump `BENCHMARK_VERSION` in
`pixplan.training.benchmark` (the generated tasks change); `tests/test_tasks.py` checks every family is
complete and that its ground truth passes its own checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Background:
    """One background requirement: a colour statistic of the background region in a range, in words."""

    stat: Literal["hue", "saturation", "brightness", "warmth"]
    low: float
    high: float
    text: str


@dataclass(frozen=True, kw_only=True)
class Element:
    """The new element a family's ad gains in its free space: an icon, or a badge with words the check reads."""

    tool: Literal["add_icon", "add_badge"]
    color: str
    icon: str | None = None
    text: str | None = None
    words: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """`rule_based`'s fixed answer: a background step (tool, args), a slogan, a corner element (tool, args)."""

    background: tuple[str, dict[str, Any]]
    slogan: str | None
    corner: tuple[str, dict[str, Any]] | None
    remove_badge: bool = False  # remove the old badge (no new element)
    whole: bool = False  # the background step retouches the whole ad


@dataclass(frozen=True, kw_only=True)
class Family:
    """One goal family of the benchmark, complete: the generator and every baseline read only this."""

    name: str
    goals: tuple[str, ...]
    words: tuple[str, ...]  # a new slogan must contain one (empty: the family asks for no slogan)
    slogans: tuple[str, ...]  # ground-truth slogans, each containing one of `words`
    background: tuple[Background, ...]
    gradients: tuple[tuple[str, str], ...]  # ground-truth backgrounds, each meeting every background check
    element: Element | None  # None: the old badge is removed instead
    keywords: str  # regular expression that names the family in a goal (the keyword baselines)
    recipe: Recipe
    style: str | None = field(default=None)  # single_step's global stylize style (None: "warm")


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family(
            name="eco",
            goals=(
                "Make this advertisement more eco-friendly",
                "Give this ad a green, sustainable feel",
                "Rework the ad so it appeals to environmentally conscious shoppers",
                "Make the ad say that the brand cares about the planet",
            ),
            words=("eco", "green", "planet", "sustainab", "nature", "earth"),
            slogans=("Good for the planet", "Naturally green", "Eco friendly choice"),
            background=(
                Background("hue", 75, 165, "the background's colour reads as green"),
                Background("saturation", 0.2, 1.0, "the background is clearly coloured, not grey"),
            ),
            gradients=(("#2e7d32", "#81c784"), ("#33691e", "#9ccc65"), ("#1b5e20", "#66bb6a")),
            element=Element(tool="add_icon", icon="leaf", color="white"),
            keywords="eco|green|sustainab|planet|environment",
            recipe=Recipe(
                background=("recolor", {"color": "forestgreen"}),
                slogan="Eco friendly",
                corner=("add_icon", {"icon": "leaf"}),
            ),
            style=None,
        ),
        Family(
            name="winter",
            goals=(
                "Adapt this ad for a winter campaign",
                "Make the advertisement feel wintry and cold",
                "Turn this into a snowy holiday-season winter ad",
            ),
            words=("winter", "snow", "frost", "cozy", "chill"),
            slogans=("Warm up this winter", "Snow days ahead", "Cozy winter deals"),
            background=(
                Background("hue", 180, 250, "the background's colour reads as blue"),
                Background("brightness", 0.6, 1.0, "the background is light"),
            ),
            gradients=(("#e3f2fd", "#90caf9"), ("#e1f5fe", "#81d4fa"), ("#eceff1", "#90a4ae")),
            element=Element(tool="add_icon", icon="snowflake", color="#1565c0"),
            keywords="winter|snow|cold|wintry",
            recipe=Recipe(
                background=("recolor", {"color": "lightsteelblue"}),
                slogan="Winter deals",
                corner=("add_icon", {"icon": "snowflake"}),
            ),
            style="cool",
        ),
        Family(
            name="summer",
            goals=(
                "Give this ad a summer vibe",
                "Make the advertisement feel sunny and summery",
                "Adapt this ad for a summer beach campaign",
            ),
            words=("summer", "sunny", "sun", "beach"),
            slogans=("Summer is here", "Sunny days deal", "Hello summer"),
            background=(
                Background("warmth", 0.15, 1.0, "the background feels warm"),
                Background("brightness", 0.55, 1.0, "the background is mid-toned"),
            ),
            gradients=(("#ffe082", "#ffb74d"), ("#fff176", "#ffa726"), ("#ffcc80", "#ffab40")),
            element=Element(tool="add_icon", icon="sun", color="#e65100"),
            keywords="summer|sunny|beach",
            recipe=Recipe(
                background=("adjust_tone", {"warmth": 0.6, "brightness": 0.3}),
                slogan="Summer fun",
                corner=("add_icon", {"icon": "sun"}),
            ),
            style=None,
        ),
        Family(
            name="luxury",
            goals=(
                "Make this ad look luxurious and premium",
                "Give the advertisement an upscale, high-end look",
                "Reposition this ad for a luxury audience",
            ),
            words=("luxury", "premium", "exclusive", "finest", "elegan"),
            slogans=("Premium quality", "Pure luxury", "The finest choice"),
            background=(Background("brightness", 0.0, 0.25, "the background is dark"),),
            gradients=(("#121212", "#3a3a3a"), ("#1a1a2e", "#2c2c3e"), ("#0d0d0d", "#2b2520")),
            element=Element(tool="add_icon", icon="star", color="#d4af37"),
            keywords="luxur|premium|upscale|high-end",
            recipe=Recipe(
                background=("adjust_tone", {"brightness": -0.8}),
                slogan="Premium quality",
                corner=("add_icon", {"icon": "star"}),
            ),
            style="cool",
        ),
        Family(
            name="kids",
            goals=(
                "Make this ad appeal to kids",
                "Turn the advertisement into something playful for children",
                "Make the ad fun and colourful for families with young kids",
            ),
            words=("kids", "fun", "play", "family", "happy"),
            slogans=("Fun for kids", "Play all day", "Happy family fun"),
            background=(
                Background("saturation", 0.5, 1.0, "the background is vivid and colourful"),
                Background("brightness", 0.5, 1.0, "the background is mid-toned"),
            ),
            gradients=(("#ff4081", "#ffd740"), ("#40c4ff", "#ffeb3b"), ("#ff6e40", "#ffff00")),
            element=Element(tool="add_icon", icon="heart", color="#6a1b9a"),
            keywords="kid|child|playful",
            recipe=Recipe(
                background=("adjust_tone", {"saturation": 1.0, "brightness": 0.2}),
                slogan="Fun for kids",
                corner=("add_icon", {"icon": "heart"}),
            ),
            style="posterize",
        ),
        Family(
            name="vegan",
            goals=(
                "Adapt this ad for a vegan audience",
                "Make the advertisement plant-based and vegan friendly",
                "Market this product to vegans",
            ),
            words=("vegan", "plant"),
            slogans=("Proudly vegan", "Plant powered", "Vegan and tasty"),
            background=(
                Background("hue", 70, 160, "the background's colour reads as green"),
                Background("saturation", 0.2, 1.0, "the background is clearly coloured, not grey"),
            ),
            gradients=(("#aed581", "#558b2f"), ("#c5e1a5", "#7cb342"), ("#8bc34a", "#33691e")),
            element=Element(tool="add_badge", text="VEGAN", color="white", words=("vegan",)),
            keywords="vegan|plant",
            recipe=Recipe(
                background=("recolor", {"color": "yellowgreen"}),
                slogan="Now vegan",
                corner=("add_badge", {"text": "VEGAN"}),
            ),
            style=None,
        ),
        Family(
            name="festive",
            goals=(
                "Make this ad festive for the holidays",
                "Give the advertisement a Christmas holiday feel",
                "Adapt the ad for the festive season",
            ),
            words=("holiday", "festive", "season", "gift", "merry"),
            slogans=("Happy holidays", "The perfect gift", "Festive season deals"),
            background=(
                Background("hue", 335, 20, "the background's colour reads as red"),
                Background("saturation", 0.35, 1.0, "the background is vivid and colourful"),
            ),
            gradients=(("#b71c1c", "#e53935"), ("#c62828", "#8e0000"), ("#d32f2f", "#7f0000")),
            element=Element(tool="add_icon", icon="star", color="#ffd600"),
            keywords="festive|christmas|holiday",
            recipe=Recipe(
                background=("recolor", {"color": "firebrick"}),
                slogan="Happy holidays",
                corner=("add_icon", {"icon": "star"}),
            ),
            style=None,
        ),
        Family(
            name="minimalist",
            goals=(
                "Make this ad minimalist",
                "Simplify the advertisement: clean, calm and uncluttered",
                "Give the ad a minimal, Scandinavian look",
            ),
            words=(),
            slogans=(),
            background=(
                Background("saturation", 0.0, 0.12, "the background is muted, almost colourless"),
                Background("brightness", 0.8, 1.0, "the background is light"),
            ),
            gradients=(("#fafafa", "#eeeeee"), ("#ffffff", "#f0f0f0"), ("#f5f5f5", "#e8e8e8")),
            element=None,
            keywords="minimal|simplif|clean",
            recipe=Recipe(
                background=("adjust_tone", {"saturation": -1.0, "brightness": 0.6}),
                slogan=None,
                corner=None,
                remove_badge=True,
            ),
            style="mono",
        ),
        Family(
            name="night",
            goals=(
                "Turn this into a neon night-time ad",
                "Give the advertisement a late-night neon city look",
                "Make the ad feel like it is night",
            ),
            words=("night", "neon", "midnight", "late", "dark"),
            slogans=("Open late tonight", "Neon nights", "After midnight"),
            background=(Background("brightness", 0.0, 0.25, "the background is dark"),),
            gradients=(("#0d0221", "#241734"), ("#05004e", "#1a0033"), ("#000814", "#1b263b")),
            element=Element(tool="add_icon", icon="star", color="#ff00ff"),
            keywords="night|neon",
            recipe=Recipe(
                background=("adjust_tone", {"brightness": -0.7}),
                slogan="Open late tonight",
                corner=("add_icon", {"icon": "star"}),
                whole=True,
            ),
            style="cool",
        ),
        Family(
            name="retro",
            goals=(
                "Give this ad a retro look",
                "Make the advertisement feel vintage, like the seventies",
                "Restyle the ad in an old-school retro way",
            ),
            words=("retro", "classic", "vintage", "since", "original"),
            slogans=("A true classic", "Retro since 1975", "The original"),
            background=(
                Background("warmth", 0.12, 0.6, "the background feels warm"),
                Background(
                    "saturation", 0.15, 0.55, "the background is softly coloured, neither grey nor garish"
                ),
            ),
            gradients=(("#d7b98e", "#b08a5a"), ("#e0c097", "#a47148"), ("#cfa670", "#9c6b3c")),
            element=Element(tool="add_badge", text="SINCE 1975", color="#8d5524", words=("since", "1975")),
            keywords="retro|vintage|old-school|seventies",
            recipe=Recipe(
                background=("stylize", {"style": "vintage"}), slogan="A true classic", corner=None, whole=True
            ),
            style="vintage",
        ),
        Family(
            name="sale",
            goals=(
                "Turn this into a sale ad",
                "Make the advertisement announce a big discount",
                "Adapt the ad for a clearance sale",
            ),
            words=("sale", "off", "save", "deal", "discount"),
            slogans=("Big sale today", "Save big now", "Deals of the week"),
            background=(
                Background("hue", 340, 35, "the background's colour reads as orange or red"),
                Background("saturation", 0.4, 1.0, "the background is vivid and colourful"),
            ),
            gradients=(("#ff5722", "#ff9800"), ("#e53935", "#ff7043"), ("#f4511e", "#ffb300")),
            element=Element(tool="add_badge", text="30% OFF", color="#d50000", words=("30%", "off")),
            keywords="sale|discount|clearance",
            recipe=Recipe(
                background=("recolor", {"color": "orangered"}),
                slogan="Big sale",
                corner=("add_badge", {"text": "SALE"}),
            ),
            style="posterize",
        ),
        Family(
            name="rural",
            goals=(
                "Adapt this ad for a rural audience",
                "Make the advertisement speak to farmers and country folk",
                "Give the ad a countryside, farm-fresh feel",
            ),
            words=("farm", "country", "local", "village", "homegrown"),
            slogans=("Farm fresh quality", "From the country", "Proudly local"),
            background=(
                Background("hue", 25, 140, "the background's colour reads as earthy green or brown"),
                Background("saturation", 0.2, 0.8, "the background is clearly coloured, not grey"),
            ),
            gradients=(("#8d6e63", "#a5d6a7"), ("#a1887f", "#7cb342"), ("#9e9d24", "#6d4c41")),
            element=Element(tool="add_icon", icon="sun", color="#f9a825"),
            keywords="rural|farm|country",
            recipe=Recipe(
                background=("recolor", {"color": "olivedrab"}),
                slogan="Farm fresh",
                corner=("add_icon", {"icon": "sun"}),
            ),
            style=None,
        ),
    )
}

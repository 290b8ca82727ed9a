"""Choices: where a value must be one of a few known values, given by the caller, never read out of the prompt.

The graph knows the region ids, tool names and checklist ids an answer may use; it passes them to
``bind_tools(..., choices=...)`` and ``with_structured_output(..., choices=...)`` as argument paths (``"region"``,
``"steps.*.tool"``; ``*`` matches any key or index) mapped to allowed values, or to a function of what has been
decoded so far (`numbered`, `ids_at`: a plan's steps serve the checklist ids the plan itself wrote).

Hints are a separate, named policy (`LocalChatModel.hints`): among the allowed options, prefer those that the
step's own words name (`hint_text`: a colour, an enum value, a region's label, but not a landmark or the
thing a tool adds: `region_mentions`). A 135M model follows a request's words poorly when it picks an option (a
choice's log-likelihood also favours short options); with hints on, only the options the words name best compete
and the model's likelihood decides among them. With hints off the model alone chooses, so a figure can say which
of the two chose.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class ChoiceContext:
    """What a choice function sees: the value decoded so far (``root``) and the path being decoded."""

    root: Any
    path: tuple[str | int, ...]


#: Allowed values, or a function of the context returning them (None: no constraint).
Choices = Sequence[Any] | Callable[[ChoiceContext], Sequence[Any] | None]

#: Array length bounds (min, max or None) beyond the schema's, or a function of the context returning them.
Lengths = tuple[int, int | None] | Callable[[ChoiceContext], tuple[int, int | None]]


def match(pattern: str, path: tuple[str | int, ...]) -> bool:
    """Whether an argument path (``("steps", 0, "tool")``) matches a pattern (``"steps.*.tool"``)."""
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p == "*" or p == str(k) for p, k in zip(parts, path, strict=True))


def numbered(prefix: str) -> Choices:
    """The id of an array item by its position: ``numbered("c")`` gives c1, c2, ... (path ``"list.*.id"``)."""
    return lambda ctx: [f"{prefix}{ctx.path[-2] + 1}"]


def ids_at(key: str) -> Choices:
    """The ``id`` of every item the answer itself wrote under `key` (a plan's steps serve its checklist ids)."""

    def ids(ctx: ChoiceContext) -> list[str]:
        items = (ctx.root or {}).get(key, []) if isinstance(ctx.root, dict) else []
        return [item["id"] for item in items if isinstance(item, dict) and "id" in item]

    return ids


#: Colours a colour argument chooses among (CSS names every colour parser knows), after those the request names.
BASE_COLOURS = (
    "white",
    "black",
    "gray",
    "beige",
    "red",
    "crimson",
    "orange",
    "gold",
    "yellow",
    "green",
    "forestgreen",
    "seagreen",
    "olivedrab",
    "lightgreen",
    "teal",
    "skyblue",
    "blue",
    "navy",
    "purple",
    "pink",
    "brown",
)

_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}\b")
_COLOUR_WORD = re.compile(r"\b(colou?r)\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")


def named_colours(text: str) -> list[str]:
    """CSS colour names and hex codes that `text` names ("green", "forest green" -> forestgreen, "#2e8b57"),
    in the order they appear (two-word names first: "forest green" is forestgreen, not also green)."""
    from PIL import ImageColor

    found: list[tuple[int, str]] = [(m.start(), m.group(0).lower()) for m in _HEX_COLOUR.finditer(text)]
    words = [(m.start(), m.group(0).lower()) for m in re.finditer(r"[A-Za-z]+", text)]
    i = 0
    while i < len(words):
        start, word = words[i]
        if i + 1 < len(words) and word + words[i + 1][1] in ImageColor.colormap:
            found.append((start, word + words[i + 1][1]))
            i += 1
        elif word in ImageColor.colormap:
            found.append((start, word))
        i += 1
    return [name for _, name in sorted(found)]


#: Quoted spans of a request ('eco', "WINTER SALE"): the words to write, not words about how to write them.
_QUOTED = re.compile(r"(?<!\w)'[^'\n]+?'(?!\w)|\"[^\"\n]*\"|‘[^’]*’|“[^”]*”")


def unquoted(text: str) -> str:
    """`text` without its quoted spans: a slogan to write ("mention 'green'") does not ask for a green colour."""
    return _QUOTED.sub(" ", text)


def colour_options(hint_text: str, nullable: bool = False) -> Choices:
    """The options of a colour argument: the colours `hint_text` names outside quotes, then `BASE_COLOURS` (and,
    where the argument may be null, ``None`` first: the tool's own default colour, what a call that names no
    colour writes), less the colours the call's other arguments already took (a gradient's second colour, a
    badge's text on the badge)."""
    colours = dict.fromkeys([*named_colours(unquoted(hint_text)), *BASE_COLOURS])
    options: list[str | None] = [*([None] if nullable else []), *colours]

    def choices(ctx: ChoiceContext) -> list[str]:
        args = ctx.root if isinstance(ctx.root, dict) and len(ctx.path) == 1 else {}
        taken = {value for key, value in args.items() if key != ctx.path[0] and isinstance(value, str)}
        return [option for option in options if option not in taken]

    return choices


def _allows_string(schema: dict[str, Any]) -> bool:
    kinds = [schema.get("type")] + [branch.get("type") for branch in schema.get("anyOf", [])]
    return "string" in kinds and "enum" not in schema and "const" not in schema


def colour_arguments(parameters: dict[str, Any]) -> list[str]:
    """The string arguments of a tool's schema whose name or description says colour: they choose among colour
    names (`colour_options`) instead of free text a small model writes badly."""
    return [
        key
        for key, schema in parameters.get("properties", {}).items()
        if _allows_string(schema)
        and ("color" in key or "colour" in key or _COLOUR_WORD.search(schema.get("description", "")))
    ]


def allows_null(schema: dict[str, Any]) -> bool:
    """Whether an argument's schema takes ``null`` (an optional value whose default is the tool's own choice)."""
    kinds = [schema.get("type")] + [branch.get("type") for branch in schema.get("anyOf", [])]
    return "null" in kinds or (isinstance(schema.get("type"), list) and "null" in schema["type"])


def hint_words(text: str) -> dict[str, int]:
    """The words of a request, each with the position of its first occurrence, lower case, with each pair of
    neighbours also run together ("forest green" -> "forestgreen", at the position of "forest")."""
    words = _WORD.findall(text.lower())
    found: dict[str, int] = {}
    for i, (a, b) in enumerate(itertools.pairwise([*words, ""])):
        found.setdefault(a, i)
        if b:
            found.setdefault(a + b, i)
    return found


#: Spatial relations whose object is a landmark ("left of the photo", "next to the logo"): where the edit goes
#: relative to, not what it edits.
_RELATION = re.compile(
    r"\b(?:(?:left|right)\s+of|next\s+to|close\s+to|away\s+from|beside|near|above|below|beneath|under"
    r"|underneath|around|behind|between|outside)\b([^.,;:()\n]*)",
    re.IGNORECASE,
)
_DETERMINERS = frozenset({"the", "a", "an", "its", "their", "this", "that", "each", "every"})
#: Words that end a landmark phrase ("left of the photo and in gold": the landmark is the photo).
_PHRASE_END = frozenset(
    {"and", "or", "but", "so", "while", "with", "in", "at", "on", "to", "is", "are", "where"}
)


def landmarks(text: str) -> set[str]:
    """The words of what `text` places things relative to: up to three words after a spatial relation
    ("in the free space left of the product photo" -> product, photo), outside quotes."""
    found: set[str] = set()
    for relation in _RELATION.finditer(unquoted(text)):
        words = [w for w in _WORD.findall(relation.group(1).lower()) if w not in _DETERMINERS]
        for word in words[:3]:
            if word in _PHRASE_END:
                break
            if len(word) >= 3:
                found.add(word)
    return found


def region_mentions(text: str, tool_name: str) -> dict[str, int]:
    """The hint words that may name the region a call of `tool_name` edits: `hint_words` less the landmarks (a
    leaf icon "left of the photo" goes beside the photo, not on it) and, for a tool that adds a thing
    (``add_<thing>``), the thing's name and its quoted text ("a badge reading 'SALE' is added" names the new
    badge and its words, not the badge or the 'SALE' headline the catalog lists)."""
    left_out = landmarks(text)
    adds = tool_name.startswith("add_")
    if adds:
        left_out |= set(_WORD.findall(tool_name[len("add_") :].lower()))
    words = hint_words(unquoted(text) if adds else text)
    return {key: at for key, at in words.items() if not any(word in key for word in left_out)}


def _named_at(word: str, mentions: dict[str, int]) -> int | None:
    """Where the request first names `word` (also as an inflection: "gradient"/"gradients", "green"/"greener")."""
    if word in mentions:
        return mentions[word]
    if len(word) < 4:
        return None
    places = [i for m, i in mentions.items() if len(m) >= 4 and (m.startswith(word) or word.startswith(m))]
    return min(places, default=None)


def mention_score(option: str, mentions: dict[str, int]) -> float:
    """The share of an option's words (``"linear_gradient"``: linear, gradient; words of 3+ letters) that the
    request names, 0 for numbers, ids ("r2") and options it does not name; among options named alike, the one
    named first scores a little higher ("forestgreen" before "green" in "forest green", and of "blue to white"
    the first colour argument takes blue, the next one white)."""
    words = [w for w in _WORD.findall(option.lower()) if len(w) >= 3]
    places = [i for i in (_named_at(w, mentions) for w in words) if i is not None]
    if not places:
        return 0.0
    return len(places) / len(words) + 0.001 / (1 + min(places))

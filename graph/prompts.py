"""Prompts of the planner and the orchestrator, and the small formatters that fill them.

Images are described by their region catalog (`describe_catalog`), so a text-only model sees the layout, the
OCR text and the region ids it may name; multimodal models get the picture as well.
"""

from __future__ import annotations

import json
from typing import Any

PLANNER_SYSTEM = """You plan image edits. Given an image (described by its region catalog) and an abstract goal, \
write:
1. a checklist: concrete requirements that the edited image must meet for the goal to be reached, each with an \
id (c1, c2, ...) and, where it can be verified on pixels, a typed check on a region of the catalog \
(text_contains, color_in_range, changed, preserved);
2. ordered atomic steps (s1, s2, ...): each step is ONE edit with ONE tool on ONE region, says what to change, \
where and how, names the checklist items it serves, and the tool that fits it best.
Every checklist item must be served by a step; no step may be redundant. Keep what the goal does not ask to \
change (product, logo, prices) unchanged, and say so in the checklist. Use region ids from the catalog.
"""

PLANNER_TASK = """Goal: {goal}

Image: {width}x{height} pixels. Region catalog:
{catalog}

Tools the steps can use:
{tools}

{example}
{history}
Write the checklist and at most {max_steps} steps."""

REPLAN_HISTORY = """
Work so far (these steps are done and stay done; the current image already contains them):
{done}
What went wrong:
{failed}
Plan the REMAINING work only: keep the full checklist of the goal, and give steps for what is still missing."""

PLAN_INVALID = """That plan is not valid:
{error}
Write the whole plan again, fixing these problems."""

ANOTHER_PLAN = """Other planners already proposed these plans:
{plans}
Write a different, better plan: cover every requirement of the goal with concrete, atomic steps."""

ORCHESTRATOR_SYSTEM = """You execute one step of an image edit by calling exactly one tool. Choose the tool \
that fits the step, the region to apply it to (a region id from the catalog such as 'r2', 'whole', \
'background', or a normalized box [x0, y0, x1, y1]), and the tool's arguments. Always pass the current \
image id as image_id. Answer with the tool call only."""

ORCHESTRATOR_TASK = """Step {step_id}: {instruction}
It serves: {serves}
{tool}
Current image id: {image_id} ({width}x{height})
Region catalog:
{catalog}
{feedback}"""

RETRY_FEEDBACK = """
Earlier attempts at this step were judged and reverted; the image is back to how it was before the step. \
Do better this time:
{attempts}"""

REPEATED_CALL = """That exact call was already tried for this step and the judge rejected its result. \
Call a different tool, or the same tool on another region or with other arguments."""

NO_TOOL_CALL = "You did not call a tool. Call exactly one of the tools now to execute the step."


def format_checklist(checklist: list[dict[str, Any]]) -> str:
    return "\n".join(f"- {item['id']}: {item['text']}" for item in checklist) or "- (none)"


def format_attempt_feedback(attempts: list[dict[str, Any]]) -> str:
    """What the orchestrator learns from earlier attempts at a step: its call, the score, the judge's words."""
    lines = []
    for attempt in attempts:
        call = (
            f"{attempt['tool']}({json.dumps(attempt['args'], sort_keys=True)})"
            if attempt["tool"]
            else "no tool"
        )
        lines.append(f"- attempt {attempt['attempt']}: {call}")
        if attempt["verdict"] is not None:
            verdict = attempt["verdict"]
            lines.append(f"  score {attempt['score']:.2f}; judge: {'; '.join(verdict['reasons'][:4])}")
            if verdict.get("fix_instructions"):
                lines.append(f"  fix: {verdict['fix_instructions']}")
        elif attempt["failure"] is not None:
            lines.append(f"  failed: {attempt['failure']['message']}")
        for error in attempt["tool_errors"][-2:]:
            lines.append(f"  tool error: {error}")
    return "\n".join(lines)


def format_done_steps(attempts: list[dict[str, Any]]) -> str:
    done = [attempt for attempt in attempts if attempt["accepted"]]
    return "\n".join(f"- {a['step_id']}: {a['instruction']} ({a['tool']})" for a in done) or "- (nothing yet)"


def format_tools(tools: list[Any]) -> str:
    """One line per tool: its name and the first sentence of its description."""
    return "\n".join(f"- {tool.name}: {tool.description.strip().splitlines()[0]}" for tool in tools)


# ---------------------------------------------------------------------------------------------------------------
# Demonstrations: a plan for the most similar known goal, written for THIS image's regions. Small models copy
# structure from a demonstration far better than they follow instructions; large ones simply read it as a hint.

#: keywords, goal of the demonstration, background (instruction, hue range or brightness range), slogan text,
#: words the slogan check accepts.
DEMONSTRATIONS: list[dict[str, Any]] = [
    {
        "keywords": {
            "eco",
            "green",
            "sustainable",
            "sustainability",
            "nature",
            "natural",
            "organic",
            "environment",
            "environmental",
            "planet",
            "earth",
            "vegan",
            "plant",
            "fresh",
        },
        "goal": "make this ad feel natural and eco-friendly",
        "background": ("Replace the background with a soft green gradient.", "hue", 70, 170),
        "background_text": "the background looks natural and green",
        "slogan": "Naturally green",
        "words": ["natur", "green", "eco"],
    },
    {
        "keywords": {"winter", "snow", "christmas", "xmas", "holiday", "holidays", "festive", "cold", "ice"},
        "goal": "adapt this ad for a winter campaign",
        "background": ("Replace the background with a pale blue to white gradient.", "hue", 180, 250),
        "background_text": "the background looks cold and wintry, pale blue",
        "slogan": "Winter warmth",
        "words": ["winter", "snow", "warm"],
    },
    {
        "keywords": {
            "luxury",
            "luxurious",
            "premium",
            "elegant",
            "exclusive",
            "gold",
            "golden",
            "classy",
            "expensive",
            "upscale",
        },
        "goal": "make this ad look more luxurious",
        "background": (
            "Replace the background with a deep black to charcoal gradient.",
            "brightness",
            0,
            0.3,
        ),
        "background_text": "the background is dark and elegant",
        "slogan": "Pure luxury",
        "words": ["luxury", "premium", "exclusive"],
    },
    {
        "keywords": {"kids", "kid", "children", "child", "playful", "fun", "colorful", "colourful", "bright"},
        "goal": "make this ad appeal to kids",
        "background": (
            "Replace the background with a bright yellow to orange gradient.",
            "saturation",
            0.5,
            1,
        ),
        "background_text": "the background is bright and colourful",
        "slogan": "Fun for everyone",
        "words": ["fun", "kids", "play"],
    },
    {
        "keywords": {"night", "dark", "evening", "midnight", "moody", "neon"},
        "goal": "turn this ad into a night-time scene",
        "background": ("Replace the background with a dark navy blue gradient.", "brightness", 0, 0.35),
        "background_text": "the background looks like night, dark blue",
        "slogan": "After dark",
        "words": ["night", "dark", "evening"],
    },
    {
        "keywords": {"minimal", "minimalist", "clean", "simple", "simpler", "calm", "quiet", "modern"},
        "goal": "make this ad more minimalist",
        "background": ("Replace the background with plain white.", "brightness", 0.85, 1),
        "background_text": "the background is plain and light",
        "slogan": "Simply good",
        "words": ["simpl", "pure", "clean"],
    },
    {
        "keywords": set(),
        "goal": "give this ad a sunny summer feel",
        "background": ("Replace the background with a warm yellow gradient.", "hue", 35, 75),
        "background_text": "the background is warm and sunny",
        "slogan": "Summer days",
        "words": ["summer", "sun"],
    },
]


def _goal_words(goal: str) -> set[str]:
    import re

    return set(re.findall(r"[a-z]+", goal.lower()))


def pick_demonstration(goal: str) -> dict[str, Any]:
    """The demonstration whose keywords best match the goal (the last one when none matches)."""
    words = _goal_words(goal)
    return max(DEMONSTRATIONS, key=lambda demo: (len(words & demo["keywords"]), demo is DEMONSTRATIONS[-1]))


def demonstration(goal: str, regions: list[dict[str, Any]]) -> str:
    """A worked plan for a similar goal on this image's own regions, to show the format and level of detail."""
    demo = pick_demonstration(goal)
    texts = [
        r for r in regions if r["kind"] == "text" and not any(c.isdigit() for c in r.get("text", r["label"]))
    ]
    products = [r for r in regions if r["kind"] == "object"]
    has_background = any(r["id"] == "background" for r in regions)
    instruction, stat, low, high = demo["background"]
    checklist: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    if has_background:
        checklist.append(
            {
                "id": "c1",
                "text": demo["background_text"],
                "check": {
                    "type": "color_in_range",
                    "region": "background",
                    "stat": stat,
                    "min": low,
                    "max": high,
                },
            }
        )
        steps.append({"id": "s1", "instruction": instruction, "serves": ["c1"], "tool": "replace_background"})
    if texts:
        slogan = max(texts, key=lambda r: (r["box"][2] - r["box"][0]) * (r["box"][3] - r["box"][1]))
        checklist.append(
            {
                "id": f"c{len(checklist) + 1}",
                "text": f"the slogan ({slogan['id']}) matches the new mood",
                "check": {"type": "text_contains", "region": slogan["id"], "any_of": demo["words"]},
            }
        )
        steps.append(
            {
                "id": f"s{len(steps) + 1}",
                "instruction": f"Replace the text {slogan['id']} with '{demo['slogan']}'.",
                "serves": [checklist[-1]["id"]],
                "tool": "replace_text",
            }
        )
    if products:
        checklist.append(
            {
                "id": f"c{len(checklist) + 1}",
                "text": "the product stays as it is",
                "check": {"type": "preserved", "region": products[0]["id"]},
            }
        )
        if steps:
            steps[0]["serves"].append(checklist[-1]["id"])
    if not steps:
        return ""
    plan = json.dumps({"checklist": checklist, "steps": steps})
    return f'For example, a plan for the goal "{demo["goal"]}" on this image would be:\n{plan}\n'

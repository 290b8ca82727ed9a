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
where and how, and names the checklist items it serves.
Every checklist item must be served by a step; no step may be redundant. Keep what the goal does not ask to \
change (product, logo, prices) unchanged, and say so in the checklist. Use region ids from the catalog."""

PLANNER_TASK = """Goal: {goal}

Image: {width}x{height} pixels. Region catalog:
{catalog}
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

ORCHESTRATOR_SYSTEM = """You execute one step of an image edit by calling exactly one tool. Choose the tool \
that fits the step, the region to apply it to (a region id from the catalog such as 'r2', 'whole', \
'background', or a normalized box [x0, y0, x1, y1]), and the tool's arguments. Always pass the current \
image id as image_id. Answer with the tool call only."""

ORCHESTRATOR_TASK = """Step {step_id}: {instruction}
It serves: {serves}

Current image id: {image_id} ({width}x{height})
Region catalog:
{catalog}
{feedback}"""

RETRY_FEEDBACK = """
Earlier attempts at this step were judged and reverted; the image is back to how it was before the step. \
Do better this time:
{attempts}"""

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

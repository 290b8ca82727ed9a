"""What an edit leaves behind: the JSON trace and the contact sheet (model use is counted in `usage.py`).

The trace is the user's explanation of an edit and the raw material for training: the plan with its checklist
and steps, every attempt at every step (tool, arguments with the region, image id, verdict or judge failure),
the final verdict, model calls, tokens and seconds per role, and what each model call was sent (a hash and size
per prompt, the messages themselves with `trace_prompts`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from pixplan.tools.store import ImageStore

TRACE_VERSION = 1


def build_trace(
    values: dict[str, Any], *, thread_id: str | None = None, settings: dict | None = None
) -> dict:
    """The JSON trace of a finished (or stopped) edit, from the graph's final state values."""
    plan = values.get("plan")
    steps = []
    for index, step in enumerate((plan or {}).get("steps", [])):
        attempts = [
            attempt
            for attempt in values.get("attempts", [])
            if attempt["plan_version"] == values.get("plan_version") and attempt["step_index"] == index
        ]
        steps.append({**step, "attempts": attempts, "accepted": any(a["accepted"] for a in attempts)})
    final = values.get("final_verdict")
    return {
        "trace_version": TRACE_VERSION,
        "thread_id": thread_id,
        "goal": values.get("goal"),
        # How the models saw the image: its region catalog, the image's own text quoted as data.
        "catalog_text": values.get("catalog_text"),
        "status": values.get("status"),
        "original": values.get("original"),
        "result": values.get("current"),
        "settings": settings or {},
        "plan": {"checklist": (plan or {}).get("checklist", []), "steps": steps},
        "plans": values.get("plans", []),
        "attempts": values.get("attempts", []),
        "final_verdict": final,
        "final_score": _score(final),
        "final_failure": values.get("final_failure"),
        "usage": values.get("usage", {}),
    }


def _score(verdict: dict | None) -> float | None:
    if verdict is None:
        return None
    from pixplan.graph.schemas import Verdict

    return round(Verdict.model_validate(verdict).score, 4)


def write_trace(trace: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(trace, indent=1, sort_keys=False, default=str))
    return path


def _fit(image: Image.Image, size: int) -> Image.Image:
    scale = size / max(image.size)
    return image.resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS
    )


def _region_text(region: Any) -> str:
    if isinstance(region, list):
        return "[" + ",".join(f"{value:.2f}" for value in region) + "]"
    return str(region)


def contact_sheet(trace: dict, store: ImageStore, *, tile: int = 256) -> Image.Image:
    """Before, each accepted step, after: one labelled row of thumbnails."""
    panels: list[tuple[str, str, list[str]]] = [("before", trace["original"]["id"], [])]
    for attempt in trace["attempts"]:
        if attempt["accepted"] and attempt["image"] is not None:
            score = "unjudged" if attempt["score"] is None else f"score {attempt['score']:.2f}"
            tries = f", try {attempt['attempt']}" if attempt["attempt"] > 1 else ""
            panels.append(
                (
                    f"{attempt['step_id']}: {attempt['tool']}",
                    attempt["image"]["id"],
                    [_region_text(attempt["args"].get("region")), score + tries],
                )
            )
    final = "no final verdict" if trace["final_score"] is None else f"final {trace['final_score']:.2f}"
    panels.append(("after", trace["result"]["id"], [final, str(trace["status"])]))
    font = ImageFont.load_default(size=max(10, tile // 18))
    line = font.size + 4
    label_height = 3 * line + 6
    pad = 8
    sheet = Image.new("RGB", (pad + len(panels) * (tile + pad), tile + label_height + 2 * pad), "white")
    draw = ImageDraw.Draw(sheet)
    for column, (title, image_id, notes) in enumerate(panels):
        x = pad + column * (tile + pad)
        thumb = _fit(store.get(image_id).convert("RGB"), tile)
        sheet.paste(thumb, (x + (tile - thumb.width) // 2, pad + (tile - thumb.height) // 2))
        draw.rectangle([x - 1, pad - 1, x + tile, pad + tile], outline=(180, 180, 180))
        for row, text in enumerate([title, *notes]):
            draw.text(
                (x, pad + tile + 4 + row * line), _clip(draw, text, font, tile), fill="black", font=font
            )
    return sheet


def _clip(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    while text and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text

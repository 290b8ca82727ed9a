"""The HTML report of an evaluation run: where a system succeeds and fails, per family and per task.

`report.html` sits in the run folder with its thumbnails (`thumbs/`) and plots (`plots/`) beside it, so the
folder can be zipped or served as it is. Regenerate it with `pixplan eval report RUN_DIR`.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PIL import Image

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 4px; } .muted { color: #666; font-size: 0.9em; }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 16px 0; }
.card { background: #f4f4f6; border-radius: 8px; padding: 10px 16px; min-width: 120px; }
.card b { display: block; font-size: 1.6em; }
table { border-collapse: collapse; margin: 8px 0 20px; } td, th { border-bottom: 1px solid #ddd; padding: 4px 10px; }
th { text-align: left; background: #fafafa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.plots img { max-width: 49%; }
.task { display: grid; grid-template-columns: 200px 200px 1fr; gap: 12px; padding: 12px 0;
        border-bottom: 1px solid #e4e4e4; align-items: start; }
.task img { width: 192px; border: 1px solid #ccc; } .task .label { font-size: 0.8em; color: #666; }
.score { display: inline-block; border-radius: 4px; padding: 1px 8px; color: white; font-weight: bold; }
ul.items { list-style: none; padding-left: 0; margin: 6px 0; } ul.items li { margin: 2px 0; }
.ok { color: #1b7f3b; } .bad { color: #b3261e; } .keep { font-size: 0.75em; background: #e8eaf6;
      border-radius: 3px; padding: 0 4px; margin-left: 4px; }
.reason { color: #666; font-size: 0.85em; } .steps { font-family: ui-monospace, monospace; font-size: 0.8em; color: #444; }
.error { color: #b3261e; }
"""


def _colour(score: float | None) -> str:
    if score is None:
        return "#999"
    return "#1b7f3b" if score >= 0.999 else "#c77700" if score >= 0.5 else "#b3261e"


def _thumb(source: Path, target: Path, size: int = 192) -> str:
    if not target.exists():
        with Image.open(source) as image:
            image = image.convert("RGB")
            image.thumbnail((size, size))
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target, quality=85)
    return f"{target.parent.name}/{target.name}"


def _plots(run_dir: Path, summary: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    paths = []
    families = list(summary["per_family"])
    if families:
        scores = [summary["per_family"][f]["mean_score"] or 0.0 for f in families]
        passes = [summary["per_family"][f]["pass_rate"] or 0.0 for f in families]
        figure, axes = plt.subplots(figsize=(7, 3.6), dpi=110)
        positions = range(len(families))
        axes.bar(
            [p - 0.2 for p in positions],
            scores,
            width=0.4,
            label="mean score (items passed)",
            color="#3f6fb5",
        )
        axes.bar(
            [p + 0.2 for p in positions], passes, width=0.4, label="pass rate (all items)", color="#9ccc65"
        )
        axes.set_xticks(list(positions), families, rotation=35, ha="right")
        axes.set_ylim(0, 1.05)
        axes.set_title(f"{summary['system']}: score per goal family")
        axes.legend(loc="upper right", fontsize=8)
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        figure.savefig(plots / "families.png")
        plt.close(figure)
        paths.append("plots/families.png")
    kinds = list(summary["per_check"])
    if kinds:
        values = [summary["per_check"][k]["passed"] or 0.0 for k in kinds]
        figure, axes = plt.subplots(figsize=(7, 3.6), dpi=110)
        axes.barh(kinds, values, color="#7e57c2")
        for index, kind in enumerate(kinds):
            axes.text(
                values[index] + 0.02,
                index,
                f"{values[index]:.2f} (n={summary['per_check'][kind]['n']})",
                va="center",
                fontsize=8,
            )
        axes.set_xlim(0, 1.35)
        axes.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        axes.set_title("items passed per kind of check")
        axes.grid(axis="x", alpha=0.3)
        figure.tight_layout()
        figure.savefig(plots / "checks.png")
        plt.close(figure)
        paths.append("plots/checks.png")
    return paths


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _region(region: Any) -> str:
    if isinstance(region, list):
        return "[" + ",".join(f"{value:.2f}" for value in region) + "]"
    return str(region)


def _task_html(run_dir: Path, result: dict[str, Any]) -> str:
    store = run_dir / "store"
    before = _thumb(
        store / f"{result['original_id']}.png", run_dir / "thumbs" / f"{result['task']}-before.jpg"
    )
    after = _thumb(
        run_dir / "tasks" / result["task"] / "final.png", run_dir / "thumbs" / f"{result['task']}-after.jpg"
    )
    texts = {item["id"]: item for item in result["checklist"]}
    items = []
    for item in result["items"]:
        spec = texts.get(item["id"], {})
        mark, css = ("✓", "ok") if item["passed"] else ("✗", "bad")
        keep = '<span class="keep">keep</span>' if spec.get("keep") else ""
        items.append(
            f'<li><span class="{css}">{mark}</span> {html.escape(spec.get("text", item["id"]))}{keep}'
            f'<br><span class="reason">{html.escape(item["reason"])}</span></li>'
        )
    for item_id in result.get("unverifiable", []):
        items.append(
            f'<li>? {html.escape(texts[item_id]["text"])} <span class="reason">(not verifiable on pixels)</span></li>'
        )
    steps = []
    for step in result["steps"]:
        args = ", ".join(
            f"{key}={value!r}"
            for key, value in (step.get("args") or {}).items()
            if key not in ("region", "image_id") and value is not None
        )
        where = _region(step["region"]) if step.get("region") is not None else ""  # None: the tool's default
        call = f"{step.get('tool')}({', '.join(part for part in (where, args) if part)})"
        line = html.escape(call if len(call) <= 110 else call[:107] + "...")
        if step.get("error"):
            line += f' <span class="error">error: {html.escape(str(step["error"])[:160])}</span>'
        steps.append(line)
    error = (
        f'<div class="error">system error: {html.escape(result["error"])}</div>'
        if result.get("error")
        else ""
    )
    score = result["score"]
    return f"""
<div class="task" id="{html.escape(result["task"])}">
  <div><a href="store/{html.escape(result["original_id"])}.png"><img src="{before}" alt="before"></a><div class="label">before</div></div>
  <div><a href="tasks/{html.escape(result["task"])}/final.png"><img src="{after}" alt="after"></a><div class="label">after</div></div>
  <div><b>{html.escape(result["task"])}</b> <span class="score" style="background:{_colour(score)}">{_number(score)}</span>
    <div>“{html.escape(result["goal"])}”</div>
    <ul class="items">{"".join(items)}</ul>
    <div class="steps">{"<br>".join(steps) or "no tool calls"}</div>{error}
    <div class="muted">{result["seconds"]:.2f} s, {result["model_calls"]} model calls ·
      <a href="tasks/{html.escape(result["task"])}/trace.json">trace</a></div>
  </div>
</div>"""


def _matrix(results: list[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, list[bool]]]]:
    """Per family, per kind of requirement (check type, "keep" apart): the pass/fail of every item."""
    cells: dict[str, dict[str, list[bool]]] = {}
    kinds: list[str] = []
    for result in results:
        specs = {item["id"]: item for item in result["checklist"]}
        for item in result["items"]:
            spec = specs.get(item["id"], {})
            kind = (spec.get("check") or {}).get("type", "untyped") + (" (keep)" if spec.get("keep") else "")
            if kind not in kinds:
                kinds.append(kind)
            cells.setdefault(result["family"], {}).setdefault(kind, []).append(item["passed"])
    return sorted(kinds, key=lambda kind: ("keep" in kind, kind)), cells


def _cell(values: list[bool] | None) -> str:
    if not values:
        return "<td></td>"
    rate = sum(values) / len(values)
    hue = round(120 * rate)  # red (0) to green (120)
    return f'<td class="num" style="background:hsl({hue},60%,85%)" title="{sum(values)} of {len(values)}">{rate:.2f}</td>'


def write_report(run_dir: Path, summary: dict[str, Any], results: list[dict[str, Any]]) -> Path:
    """Write `report.html` (with `thumbs/` and `plots/`) into the run folder."""
    run_dir = Path(run_dir)
    plots = _plots(run_dir, summary)
    kinds, cells = _matrix(results)
    families = "".join(
        f'<tr><td><a href="#family-{html.escape(family)}">{html.escape(family)}</a></td><td class="num">{row["n"]}</td>'
        f'<td class="num">{_number(row["mean_score"])}</td><td class="num">{_number(row["pass_rate"])}</td>'
        + "".join(_cell(cells.get(family, {}).get(kind)) for kind in kinds)
        + "</tr>"
        for family, row in summary["per_family"].items()
    )
    kind_headers = "".join(f"<th>{html.escape(kind)}</th>" for kind in kinds)
    sections = []
    by_family: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_family.setdefault(result["family"], []).append(result)
    for family, items in sorted(by_family.items()):
        items = sorted(items, key=lambda r: (r["score"] if r["score"] is not None else -1, r["task"]))
        row = summary["per_family"].get(family, {})
        sections.append(
            f'<h3 id="family-{html.escape(family)}">{html.escape(family)} '
            f'<span class="muted">mean score {_number(row.get("mean_score"))}, pass rate {_number(row.get("pass_rate"))}; '
            f"worst first</span></h3>" + "".join(_task_html(run_dir, result) for result in items)
        )
    cards = [
        ("mean score", summary["mean_score"]),
        ("pass rate", summary["pass_rate"]),
        ("change items passed", summary["change_items_passed"]),
        ("keep items passed", summary["keep_items_passed"]),
        ("tasks", summary["n_tasks"]),
        ("model calls", summary["model_calls"]),
        ("seconds per task", summary["seconds_per_task"]),
    ]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pixplan eval: {html.escape(summary["system"])}</title>
<style>{STYLE}</style></head><body>
<h1>pixplan eval: {html.escape(summary["system"])}</h1>
<div class="muted">judge: {html.escape(summary["judge"])}. A task's score is the fraction of its checklist items
that pass; it passes when all do. <i>change</i> items ask for the goal's edits (colours, text, new elements);
<i>keep</i> items ask that the product, the product name and the logo survive. Items without a typed check
are not verifiable on pixels and are not counted.</div>
<div class="cards">{"".join(f'<div class="card">{html.escape(name)}<b>{_number(value)}</b></div>' for name, value in cards)}</div>
<div class="plots">{"".join(f'<img src="{path}" alt="{path}">' for path in plots)}</div>
<h2>Per family</h2>
<div class="muted">Right of the scores: the share of items passed per kind of requirement (hover for counts).</div>
<table><tr><th>family</th><th>tasks</th><th>mean score</th><th>pass rate</th>{kind_headers}</tr>{families}</table>
<h2>Tasks</h2>
{"".join(sections)}
<p class="muted">summary: <a href="summary.json">summary.json</a>, <a href="summary.md">summary.md</a></p>
</body></html>
"""
    path = run_dir / "report.html"
    path.write_text(page)
    return path

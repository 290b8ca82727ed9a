"""`pixplan edit IMAGE "GOAL" -o OUT.png`: plan, execute and judge an edit, printing each step as it happens."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pixplan.graph.context import add_context_arguments, context_settings

EXAMPLE = 'pixplan edit examples/ad.png "give this coffee ad a cosy autumn feel" -o autumn.png'


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "edit",
        help="edit an image towards an abstract goal (plan, orchestrate tools, judge, retry, replan)",
        description=(
            "Plan the goal as a checklist and atomic steps, execute each step with a tool on a region, judge "
            "every result, retry or replan, and write the image, a JSON trace and a contact sheet. Runs are "
            "checkpointed (SQLite, or Postgres with --db postgresql://...) and can be resumed. "
            f"Example: {EXAMPLE}"
        ),
    )
    parser.add_argument("image", nargs="?", help="the image to edit (omit with --resume)")
    parser.add_argument(
        "goal", nargs="?", help='the goal, e.g. "give this coffee ad a cosy autumn feel" (omit with --resume)'
    )
    parser.add_argument(
        "-o", "--output", required=True, help="where to write the edited image (.png, .jpg, .jpeg or .webp)"
    )
    parser.add_argument("--trace", help="where to write the JSON trace (default: OUTPUT with .trace.json)")
    parser.add_argument("--sheet", help="where to write the contact sheet (default: OUTPUT with .sheet.png)")
    parser.add_argument("--thread-id", help="id of this run (default: a new one, printed at the start)")
    parser.add_argument("--resume", metavar="THREAD_ID", help="continue an interrupted run")
    parser.add_argument(
        "--db",
        help="checkpoints: a SQLite file (default: checkpoints.sqlite beside the store) or a "
        "postgresql://user@host/db URL (needs the postgres extra)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="plan and orchestrate with the base local model, no trained adapters (--planner and "
        "--orchestrator still override)",
    )
    add_context_arguments(parser)
    parser.set_defaults(func=run_edit)


def _region(value: Any) -> str:
    if value is None:
        return "its default region"
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value) + "]"
    return str(value)


def format_event(event: dict[str, Any]) -> str | None:
    """One progress line per event (None for events not worth a line)."""
    kind = event.get("event")
    if kind == "perceived":
        return f"perceived {event['image']}: {event['regions']} regions"
    if kind in ("planned", "replanned"):
        plan = event["plan"]
        if plan is None:
            errors = [
                c["errors"][-1].strip("- ") for c in event["candidates"] if not c["valid"] and c["errors"]
            ]
            return f"{kind}: no new valid plan ({errors[-1] if errors else 'no candidate'})"
        lines = [f"{kind} (version {event['version']}, checklist score {event['score']:.2f}):"]
        lines += [f"  checklist {item['id']}: {item['text']}" for item in plan["checklist"]]
        lines += [f"  step {step['id']}: {step['instruction']}" for step in plan["steps"]]
        return "\n".join(lines)
    if kind == "step_started":
        return f"[{event['index'] + 1}/{event['of']}] {event['step']}: {event['instruction']}"
    if kind == "retried":
        return f"  retry {event['attempt']} of {event['step']} (reverted to {event['image'][:8]})"
    if kind == "tool_chosen":
        args = {k: v for k, v in event["args"].items() if k != "region"}
        return f"  tool {event['tool']} on {_region(event['region'])} {json.dumps(args)}"
    if kind == "tool_error":
        return f"  tool error ({event['tool']}): {event['error'][:200]}"
    if kind == "judged":
        if event["score"] is None:
            outcome = f"no verdict: {event['failure']['message'] if event['failure'] else '?'}"
        else:
            outcome = f"score {event['score']:.2f}"
            if event.get("failed_items"):
                outcome += f", not met: {', '.join(event['failed_items'])}"
        status = "accepted" if event["accepted"] else "rejected"
        return f"  judged: {outcome} -> {status}"
    if kind == "final":
        score = "no verdict" if event["score"] is None else f"{event['score']:.2f}"
        return f"final judgement: {score} ({'passed' if event['passed'] else 'not passed'})"
    if kind == "plan_edited":
        return "plan edited by the user"
    return None


def _review(request: dict[str, Any]) -> Any:
    """Ask on the terminal: accept the plan, or edit it as JSON in a file."""
    if request.get("error"):
        print(f"the edited plan is not valid: {request['error']}")
    print(json.dumps(request["plan"], indent=1))
    answer = input("accept this plan? [Y]es / [e]dit: ").strip().lower()
    if answer in ("", "y", "yes"):
        return True
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(request["plan"], handle, indent=1)
    input(f"edit the plan in {handle.name}, save it, then press Enter: ")
    return json.loads(Path(handle.name).read_text())


def edit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings the flags give; `--untrained` serves the base local model (no adapters) in every role
    whose model was not named."""
    settings = context_settings(args)
    if args.untrained:
        from pixplan.graph.models import DEFAULT_MODEL

        settings.setdefault("planner_model", DEFAULT_MODEL)
        settings.setdefault("orchestrator_model", DEFAULT_MODEL)
    return settings


def run_edit(args: argparse.Namespace) -> int:
    from pixplan.graph.api import edit

    if not args.resume and (args.image is None or args.goal is None):
        print("pixplan edit: needs IMAGE and GOAL (or --resume THREAD_ID)", file=sys.stderr)
        return 2
    from pixplan.tools.store import check_output_path

    output = check_output_path(args.output)
    settings = edit_settings(args)
    thread_id = args.resume or args.thread_id or uuid.uuid4().hex[:12]
    if not args.quiet:
        print(f"{'resuming' if args.resume else 'starting'} run {thread_id}", flush=True)

    def show(event: dict[str, Any]) -> None:
        line = format_event(event)
        if line is not None and not args.quiet:
            print(line, flush=True)

    # Bad input raises one of pixplan's errors, which `pixplan`'s main() prints as one line (exit code 2).
    result = edit(
        args.image,
        args.goal,
        output=output,
        trace=args.trace or output.with_suffix(".trace.json"),
        sheet=args.sheet or output.with_suffix(".sheet.png"),
        db=args.db,
        thread_id=thread_id,
        resume=bool(args.resume),
        on_event=show,
        review=_review,
        **settings,
    )
    score = "no verdict" if result.score is None else f"{result.score:.2f}"
    print(f"run {result.thread_id}: {result.status}, final score {score}")
    print(f"wrote {result.output}, {result.trace_path}, {result.sheet_path}")
    print(f"resume or inspect with: pixplan edit --resume {result.thread_id} -o {output}")
    return 0

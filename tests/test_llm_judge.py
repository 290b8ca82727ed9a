"""LLMJudge with scripted fake multimodal models: verdicts, image blocks, failures and refusals, the cache."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pytest
from graph_fakes import ScriptedChatModel
from langchain_core.messages import AIMessage
from PIL import Image
from tiny_lm import tiny_local_model

from pixplan.graph.checks import ChecklistItem
from pixplan.graph.llm_judge import TEXT_ONLY_NOTE, LLMJudge
from pixplan.graph.schemas import JudgeFailure, JudgeRequest, Verdict
from pixplan.graph.usage import metered
from pixplan.tools.regions import save_catalog

VERDICT = {
    "reasons": ["The background is now green.", "The bottle is unchanged."],
    "instruction_adherence": 8,
    "plausibility": 7,
    "preservation": 9,
    "checklist": [
        {"id": "c1", "reason": "green background", "passed": True},
        {"id": "c2", "reason": "bottle intact", "passed": True},
    ],
    "fix_instructions": "",
}


def FakeJudgeModel(**fields: Any) -> ScriptedChatModel:
    """A scripted chat model that sees images; it answers Verdict requests with tool calls, as real models do."""
    return ScriptedChatModel(**{"profile": {"image_inputs": True}, "model_name": "fake-vision", **fields})


def verdict_call(args: dict | None = None) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "Verdict", "args": args or VERDICT, "id": "v1"}])


@pytest.fixture
def request_(store) -> JudgeRequest:
    before = np.full((48, 64, 3), 200, np.uint8)
    before[16:40, 24:40] = (30, 60, 200)  # the product
    after = before.copy()
    after[:, :24] = (40, 160, 60)  # background turned green on the left
    original = store.put(Image.fromarray(before))
    edited = store.put(Image.fromarray(after), parent=original["id"], tool="replace_background")
    save_catalog(
        store,
        {
            "image_id": original["id"],
            "width": 64,
            "height": 48,
            "regions": [{"id": "r1", "box": [0.375, 0.33, 0.625, 0.83], "kind": "object", "label": "bottle"}],
        },
    )
    return JudgeRequest(
        scope="step",
        goal="make the ad eco-friendly",
        original=original,
        before=original,
        after=edited,
        store=store,
        instruction="make the background green",
        region="background",
        checklist=[
            ChecklistItem(id="c1", text="background is green"),
            ChecklistItem(id="c2", text="bottle kept"),
        ],
    )


def test_verdict_parsed_and_images_sent_as_content_blocks(request_, tmp_path):
    model = FakeJudgeModel(responses=[verdict_call()])
    judge = LLMJudge(model, cache_dir=tmp_path / "cache")
    with metered("judge", {}) as meter:
        verdict = judge.judge(request_)
    assert isinstance(verdict, Verdict)
    assert verdict == Verdict.model_validate(VERDICT)
    assert judge.name == "llm:ScriptedChatModel:fake-vision"
    (messages,) = model.seen
    blocks = messages[-1].content
    images = [b for b in blocks if b["type"] == "image"]
    assert len(images) == 2 and all(b["mime_type"] == "image/png" for b in images)
    sent = [np.asarray(Image.open(io.BytesIO(base64.b64decode(b["base64"])))) for b in images]
    assert np.array_equal(sent[0], np.asarray(request_.store.get(request_.before["id"])))
    assert np.array_equal(sent[1], np.asarray(request_.store.get(request_.after["id"])))
    text = "\n".join(b["text"] for b in blocks if b["type"] == "text")
    for fragment in (
        "make the ad eco-friendly",
        "make the background green",
        "c1: background is green",
        "AFTER",
    ):
        assert fragment in text
    assert "reasons" in messages[0].content and "0-10" in messages[0].content
    assert meter.usage()["calls"] == 1


def test_cache_hit_makes_no_call(request_, tmp_path):
    model = FakeJudgeModel(responses=[verdict_call()])
    first = LLMJudge(model, cache_dir=tmp_path / "cache").judge(request_)
    again = LLMJudge(model, cache_dir=tmp_path / "cache")
    with metered("judge", {}) as meter:
        assert again.judge(request_) == first
    assert len(model.seen) == 1 and again.cache_hits == 1 and meter.usage()["calls"] == 0
    # another checklist is another prompt: a new call
    other = JudgeRequest(**{**request_.__dict__, "checklist": request_.checklist[:1]})
    again.judge(other)
    assert len(model.seen) == 2


def test_default_cache_lives_in_the_image_store(request_):
    model = FakeJudgeModel(responses=[verdict_call()])
    LLMJudge(model).judge(request_)
    assert len(list((request_.store.root / "judge-cache").glob("*.json"))) == 1


@pytest.mark.parametrize(
    ("response", "kind"),
    [
        ("server exploded", "error"),
        (AIMessage("I'm sorry, but I can't help with evaluating this image."), "refusal"),
        (AIMessage(""), "refusal"),
        (AIMessage("", additional_kwargs={"refusal": "policy"}), "refusal"),
        (AIMessage("", response_metadata={"finish_reason": "content_filter"}), "refusal"),
        (AIMessage("The edit looks fine, maybe 7/10."), "invalid_output"),
        (verdict_call({**VERDICT, "plausibility": 42}), "invalid_output"),
        (verdict_call({"reasons": ["?"], "checklist": []}), "invalid_output"),  # nothing scored
    ],
)
def test_failures_and_refusals_are_recorded_never_scored(request_, tmp_path, response, kind):
    if isinstance(response, str):
        model = FakeJudgeModel(responses=[verdict_call()], error=response)
    else:
        model = FakeJudgeModel(responses=[response])
    judge = LLMJudge(model, cache_dir=tmp_path / "cache")
    result = judge.judge(request_)
    assert isinstance(result, JudgeFailure), result
    assert result.kind == kind and result.message
    assert not list((tmp_path / "cache").glob("*.json"))  # failures are not cached


def test_timeout_is_a_failure(request_, tmp_path):
    model = FakeJudgeModel(responses=[verdict_call()], delay_s=2.0)
    result = LLMJudge(model, cache_dir=False, timeout_s=0.2).judge(request_)
    assert isinstance(result, JudgeFailure) and result.kind == "timeout"


def test_text_only_model_gets_a_measured_description(request_, tmp_path):
    model = FakeJudgeModel(responses=[verdict_call()], profile={"image_inputs": False})
    verdict = LLMJudge(model, cache_dir=False).judge(request_)
    assert isinstance(verdict, Verdict) and verdict.reasons[0] == TEXT_ONLY_NOTE
    blocks = model.seen[0][-1].content
    assert all(b["type"] == "text" for b in blocks)
    text = blocks[-1]["text"]
    assert "cannot see the images" in text and "Inside the region" in text and "bottle" in text
    assert "green" in text  # the after image's background colour is named
    refused = LLMJudge(model, cache_dir=False, text_only="fail").judge(request_)
    assert isinstance(refused, JudgeFailure) and "cannot see images" in refused.message


def test_local_model_judge_always_gives_a_valid_verdict(request_):
    judge = LLMJudge(tiny_local_model(), cache_dir=False)
    with metered("judge", {}) as meter:
        verdict = judge.judge(request_)
    assert isinstance(verdict, Verdict), verdict
    assert [item.id for item in verdict.checklist] == ["c1", "c2"]
    assert verdict.reasons[0] == TEXT_ONLY_NOTE
    assert meter.usage()["calls"] == 1 and meter.usage()["output_tokens"] > 0


def test_final_scope_compares_original_and_result(request_, tmp_path):
    model = FakeJudgeModel(responses=[verdict_call()])
    final = JudgeRequest(**{**request_.__dict__, "scope": "final", "instruction": "", "region": None})
    assert isinstance(LLMJudge(model, cache_dir=False).judge(final), Verdict)
    text = json.dumps([b for b in model.seen[0][-1].content if b["type"] == "text"])
    assert "ORIGINAL" in text and "RESULT" in text and "Instruction" not in text

"""The chat graph: multi-turn threads over the edit graph, with scripted models, the real tools and metric judge.

A conversation is driven as a client drives it: `graph.stream(input, config, context=Context(...))` with
`subgraphs=True` for the edit graph's progress, `Command(resume=...)` for the plan review.
"""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from graph_fakes import ScriptedChatModel, make_ad, plan_message, put_ad, tool_call
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from PIL import Image
from tiny_lm import tiny_local_model

from pixplan.graph import prompts
from pixplan.graph.chat import PREVIEW_SIDE, build_chat_graph, classify_turn
from pixplan.graph.context import Context
from pixplan.graph.metric_judge import MetricJudge

pytestmark = pytest.mark.timeout(180)

GREEN = {
    "checklist": [
        {
            "id": "c1",
            "text": "the background is green",
            "check": {"type": "color_in_range", "region": "background", "stat": "hue", "min": 70, "max": 170},
        }
    ],
    "steps": [{"id": "s1", "instruction": "Replace the background with forest green.", "serves": ["c1"]}],
}
BLUE = {
    "checklist": [
        {
            "id": "c1",
            "text": "the background is blue",
            "check": {
                "type": "color_in_range",
                "region": "background",
                "stat": "hue",
                "min": 190,
                "max": 250,
            },
        }
    ],
    "steps": [{"id": "s1", "instruction": "Replace the background with royal blue.", "serves": ["c1"]}],
}
#: A plan that the scripted orchestrator executes wrongly (green for purple): the judge rejects every try.
PURPLE = {
    "checklist": [
        {
            "id": "c1",
            "text": "the background is purple",
            "check": {
                "type": "color_in_range",
                "region": "background",
                "stat": "hue",
                "min": 260,
                "max": 300,
            },
        }
    ],
    "steps": [{"id": "s1", "instruction": "Replace the background with purple.", "serves": ["c1"]}],
}
#: The tool call for each step instruction (the orchestrator fake answers by the instruction it is given).
CALLS = {
    "forest green": ("replace_background", {"region": "background", "color": "forestgreen"}),
    "royal blue": ("replace_background", {"region": "background", "color": "royalblue"}),
    "purple": ("replace_background", {"region": "background", "color": "forestgreen"}),
}


def user_text(messages: list[BaseMessage]) -> str:
    return str(messages[-1].content)


class Script:
    """The planner fake: answers the turn classification by the user's words, and plans by the goal."""

    def __init__(self, plans: dict[str, dict], intents: dict[str, dict]):
        self.plans, self.intents = plans, intents
        self.classified: list[str] = []
        self.planned: list[str] = []

    def __call__(self, messages: list[BaseMessage]) -> AIMessage:
        system = messages[0].content if isinstance(messages[0], SystemMessage) else ""
        task = user_text(messages)
        if system.startswith(prompts.CHAT_TURN_SYSTEM[:40]):
            said = json.loads(task.split("The user's message: ", 1)[1])
            self.classified.append(said)
            intent = next((v for k, v in self.intents.items() if k in said), {"action": "edit", "version": 0})
            return AIMessage(content=json.dumps(intent))
        goal = re.search(r"Goal: (.*)", task).group(1)
        self.planned.append(task)
        return plan_message(next(plan for key, plan in self.plans.items() if key in goal))


def orchestrate(messages: list[BaseMessage]) -> AIMessage:
    task = next(m.content for m in reversed(messages) if isinstance(m, HumanMessage))
    name, args = next(call for key, call in CALLS.items() if key in task)
    return tool_call(name, call_id=f"c{len(messages)}", image_id="?", **args)


INTENTS = {
    "undo": {"action": "undo", "version": 0},
    "first version": {"action": "go_to_version", "version": 0},
    "plan before": {"action": "plan_first", "version": 0},
}


@pytest.fixture
def chat(store):
    """A chat graph with scripted models on an in-memory checkpointer, and a `send(content)` that runs a turn."""
    script = Script({"green": GREEN, "blue": BLUE, "purple": PURPLE}, INTENTS)
    graph = build_chat_graph(
        planner=ScriptedChatModel(responses=[], respond=script),
        orchestrator=ScriptedChatModel(responses=[], respond=orchestrate),
        judge=MetricJudge(),
        checkpointer=InMemorySaver(),
    )
    config = {"configurable": {"thread_id": "t1"}}

    class Chat:
        context = Context(store_dir=str(store.root), num_plan_candidates=1)

        events: list[tuple[tuple, dict]]

        def send(self, payload):
            self.events = []
            for namespace, mode, chunk in graph.stream(
                payload, config, context=self.context, stream_mode=["custom", "updates"], subgraphs=True
            ):
                if mode == "custom":
                    self.events.append((namespace, chunk))
            return graph.get_state(config)

        def say(self, *content):
            blocks = [{"type": "text", "text": c} if isinstance(c, str) else c for c in content]
            return self.send({"messages": [HumanMessage(content=blocks)]})

    helper = Chat()
    helper.graph, helper.config, helper.script, helper.store = graph, config, script, store
    return helper


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def upload() -> dict:
    return {"type": "image", "url": data_url(make_ad())}


def blocks(message: BaseMessage, kind: str) -> list[dict]:
    return [b for b in message.content if isinstance(b, dict) and b.get("type") == kind]


def background(store, image_id: str) -> np.ndarray:
    return np.asarray(store.get(image_id))[2, 2].astype(int)


def test_goal_follow_up_and_undo(chat, store):
    original = put_ad(store)  # the same pixels as the upload, with its region catalog
    state = chat.say("make the background green", upload())
    values = state.values
    assert [v["version"] for v in values["versions"]] == [0, 1] and values["current"] == 1
    assert values["versions"][0]["image"]["id"] == original["id"] and values["versions"][0]["goal"] is None
    first = values["versions"][1]
    assert first["goal"] == "make the background green" and first["turn"] == 1 and first["parent"] == 0
    assert first["score"] == pytest.approx(1.0)
    green = background(store, first["image"]["id"])
    assert green[1] > green[0] + 40 and green[1] > green[2]
    # The user's upload is kept as a preview and its store id, not as the data URL it came as.
    human = values["messages"][0]
    assert blocks(human, "image")[0]["file_id"] == original["id"]
    assert "url" not in blocks(human, "image")[0]
    answer = values["messages"][-1]
    assert isinstance(answer, AIMessage)
    text = blocks(answer, "text")[0]["text"]
    assert "Plan:" in text and "version 1" in text and "judged 1.00 (passed)" in text
    assert "1. Replace the background with forest green. -> replace_background (background)" in text
    assert "Not managed" not in text
    image = blocks(answer, "image")[0]
    assert image["file_id"] == first["image"]["id"] and image["mime_type"] == "image/jpeg"
    preview = Image.open(io.BytesIO(base64.b64decode(image["base64"])))
    assert max(preview.size) <= PREVIEW_SIDE
    # The edit graph's progress reached the chat's stream, from the subgraph's namespace.
    kinds = [event["event"] for namespace, event in chat.events if namespace]
    assert (
        kinds[:3] == ["perceived", "planned", "step_started"] and "tool_chosen" in kinds and "final" in kinds
    )
    assert [e["action"] for ns, e in chat.events if not ns and e["event"] == "turn"] == ["edit"]

    state = chat.say("now make the background blue instead")
    values = state.values
    second = values["versions"][2]
    assert values["current"] == 2 and second["parent"] == 1 and second["turn"] == 2
    # The follow-up edited the result of the first turn, not the upload.
    lineage = [ref["id"] for ref in store.lineage(second["image"]["id"])]
    assert lineage[:3] == [original["id"], first["image"]["id"], second["image"]["id"]]
    blue = background(store, second["image"]["id"])
    assert blue[2] > blue[0] + 60
    # A second goal is a new edit with fresh budgets, not a replan of the first.
    planned = [e for ns, e in chat.events if ns and e["event"] in ("planned", "replanned")]
    assert [(e["event"], e["version"]) for e in planned] == [("planned", 1)]
    assert "Work so far" not in chat.script.planned[-1]
    assert [e["attempt"] for ns, e in chat.events if ns and e["event"] == "judged"] == [1]

    state = chat.say("undo that")
    values = state.values
    assert values["current"] == 1 and len(values["versions"]) == 3
    answer = values["messages"][-1]
    assert "version 1" in blocks(answer, "text")[0]["text"]
    restored = blocks(answer, "image")[0]["file_id"]
    assert restored == first["image"]["id"]
    assert store.path(restored).read_bytes() == store.path(first["image"]["id"]).read_bytes()
    assert chat.script.classified == [
        "make the background green",
        "now make the background blue instead",
        "undo that",
    ]
    # Every message is a standard message with content blocks; six of them after three turns.
    assert [type(m).__name__ for m in values["messages"]] == ["HumanMessage", "AIMessage"] * 3


def test_an_edit_that_fails_says_what_it_did_not_manage_and_adds_no_version(chat, store):
    put_ad(store)
    chat.say("make the background green", upload())
    values = chat.say("make the background purple").values
    assert len(values["versions"]) == 2 and values["current"] == 1
    text = blocks(values["messages"][-1], "text")[0]["text"]
    assert "1. Replace the background with purple. -> not done" in text
    assert "The image is unchanged; judged" in text and "(not passed)" in text
    assert "Not managed: the background is purple; step s1 (Replace the background with purple.)." in text
    assert blocks(values["messages"][-1], "image")[0]["file_id"] == values["versions"][1]["image"]["id"]


def test_a_second_goal_has_the_whole_replan_budget_again(chat, store):
    """The first goal spends its one replan; the second, on the same thread, gets its own (today's bug was a
    second goal that ran as a replan of the first, with its attempts and no budget left)."""
    put_ad(store)
    chat.context = Context(
        store_dir=str(store.root), num_plan_candidates=1, max_replans=1, max_retries_per_step=0
    )
    for turn in (1, 2):
        chat.say("make the background purple", upload()) if turn == 1 else chat.say(
            "make the background purple"
        )
        rounds = [
            (e["event"], e["version"]) for ns, e in chat.events if e["event"] in ("planned", "replanned")
        ]
        assert rounds == [("planned", 1), ("replanned", 2)], (turn, rounds)
        judged = [e["attempt"] for ns, e in chat.events if e["event"] == "judged"]
        assert judged == [1], (turn, judged)


def test_go_back_to_the_first_version_then_undo_the_go_back(chat, store):
    put_ad(store)
    chat.say("make the background green", upload())
    chat.say("make the background blue")
    values = chat.say("go back to the first version").values
    assert values["current"] == 0
    assert blocks(values["messages"][-1], "image")[0]["file_id"] == values["versions"][0]["image"]["id"]
    values = chat.say("undo").values
    assert values["current"] == 2
    values = chat.say("undo").values
    assert values["current"] == 1
    # An edit now starts from version 1 again, as its parent says.
    values = chat.say("make the background blue").values
    assert values["versions"][-1]["parent"] == 1 and values["current"] == 3


def test_plan_first_interrupts_and_resumes(chat, store):
    put_ad(store)
    chat.say(upload())
    state = chat.say("show me the plan before you start: make the background green")
    assert state.next == ("edit_turn",)
    review = state.interrupts[0].value  # the edit graph's plan review, raised in the subgraph
    assert review["question"].startswith("Accept this plan")
    assert review["plan"]["steps"][0]["instruction"] == GREEN["steps"][0]["instruction"]
    assert len(state.values["versions"]) == 1
    state = chat.send(Command(resume=True))
    assert state.next == () and state.values["current"] == 1
    green = background(store, state.values["versions"][1]["image"]["id"])
    assert green[1] > green[0] + 40

    # An edited plan replaces the planner's: the user turns green into blue before it runs.
    chat.say("show me the plan before you start: make the background green")
    state = chat.send(Command(resume=BLUE))
    blue = background(store, state.values["versions"][-1]["image"]["id"])
    assert blue[2] > blue[0] + 60 and state.values["versions"][-1]["parent"] == 1


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ([], "no text"),
        ([{"type": "text", "text": "   "}], "no text"),
        ([{"type": "text", "text": "make it green"}, {"type": "file", "base64": "AAAA"}], "file blocks"),
        (
            [{"type": "text", "text": "make it green"}, {"type": "image", "url": "https://x.org/a.png"}],
            "not fetched",
        ),
        (
            [{"type": "image", "base64": "bm90IGFuIGltYWdl", "mime_type": "image/png"}],
            "could not use that image",
        ),
        (
            [{"type": "text", "text": "two"}, {"type": "image", "url": "U"}, {"type": "image", "url": "U"}],
            "one image",
        ),
    ],
)
def test_bad_turns_get_a_clear_answer_and_lose_nothing(chat, store, content, says):
    put_ad(store)
    before = chat.say("make the background green", upload()).values
    content = [{**b, "url": data_url(make_ad())} if b.get("url") == "U" else b for b in content]
    after = chat.send({"messages": [HumanMessage(content=content)]}).values
    answer = after["messages"][-1]
    assert isinstance(answer, AIMessage) and says in blocks(answer, "text")[0]["text"]
    assert "\n" not in blocks(answer, "text")[0]["text"]
    assert after["versions"] == before["versions"] and after["current"] == before["current"]
    assert len(after["messages"]) == len(before["messages"]) + 2


def test_a_first_turn_without_an_image_asks_for_one_and_an_image_alone_is_kept(chat, store):
    values = chat.say("make the background green").values
    assert "Send an image first" in blocks(values["messages"][-1], "text")[0]["text"]
    assert values.get("versions", []) == []
    put_ad(store)
    values = chat.say(upload()).values
    assert [v["version"] for v in values["versions"]] == [0] and "What should I change" in str(
        values["messages"][-1].content
    )
    assert chat.script.classified == []  # nothing to classify: no model was asked
    values = chat.say("make the background green").values
    assert values["current"] == 1


def test_undo_with_nothing_to_undo_is_answered_not_edited(chat, store):
    put_ad(store)
    chat.say(upload())
    values = chat.say("undo that").values
    assert "nothing to undo" in blocks(values["messages"][-1], "text")[0]["text"]
    assert len(values["versions"]) == 1 and values["current"] == 0 and chat.script.planned == []
    values = chat.say("go back to the first version").values
    assert "Version 0 is the one shown now" in blocks(values["messages"][-1], "text")[0]["text"]


def test_a_new_image_is_added_as_a_version_and_undo_returns_to_the_one_before(chat, store):
    put_ad(store)
    chat.say("make the background green", upload())
    other = Image.new("RGB", (64, 48), (10, 200, 30))
    values = chat.say(
        {"type": "image", "base64": data_url(other).split(",", 1)[1], "mime_type": "image/png"}
    ).values
    assert [v["version"] for v in values["versions"]] == [0, 1, 2] and values["current"] == 2
    assert values["versions"][2]["parent"] is None and values["versions"][2]["image"]["width"] == 64
    values = chat.say("undo").values
    assert values["current"] == 1


def test_an_sdk_style_dict_message_with_an_image_url_block(chat, store):
    """What a `langgraph dev` client sends: a dict message with the OpenAI image_url block."""
    put_ad(store)
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "make the background green"},
            {"type": "image_url", "image_url": {"url": data_url(make_ad())}},
        ],
    }
    values = chat.send({"messages": [message]}).values
    assert values["current"] == 1 and values["versions"][1]["score"] == pytest.approx(1.0)


def test_langgraph_json_serves_the_chat_graph_beside_the_edit_graph():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    config = json.loads((root / "langgraph.json").read_text())
    path, _, name = config["graphs"]["chat"].partition(":")
    spec = importlib.util.spec_from_file_location("pixplan_langgraph_chat", root / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    graph = getattr(module, name)
    assert set(graph.get_graph().nodes) >= {"read_turn", "edit_turn", "switch_version"}
    assert "planner_model" in graph.get_context_jsonschema()["properties"]
    assert set(graph.get_input_jsonschema()["properties"]) == {"messages"}
    assert set(graph.get_output_jsonschema()["properties"]) == {"messages", "versions", "current"}


def made_versions(count: int) -> list[dict]:
    ref = {"id": "0" * 24, "width": 8, "height": 8, "parent": None, "tool": None}
    return [
        {
            "version": n,
            "image": ref,
            "turn": n,
            "goal": None if n == 0 else f"edit {n}",
            "score": None,
            "parent": None,
        }
        for n in range(count)
    ]


#: Messages and what they ask for, as (action, version) with three versions and the last one shown.
PHRASES = {
    "make the headline bigger": ("edit", None),
    "make the background warmer": ("edit", None),
    "add a plant beside the product": ("edit", None),
    "undo that": ("undo", None),
    "go back to the first version": ("go_to_version", 0),
    "show me the plan before you start: make the background green": ("plan_first", None),
}


def classify_all(model, *, hints: bool) -> dict[str, tuple[str, int | None]]:
    found = {}
    for text, (_, version) in PHRASES.items():
        request = classify_turn(model, text, versions=made_versions(3), current=2, hints=hints)
        assert request["text"] == text and "note" not in request, request
        found[text] = (request["action"], request["version"] if version is not None else None)
    return found


def test_a_local_model_classifies_turns_among_explicit_choices_with_hints_on_and_off():
    """The tiny random model: its hints setting decides (on: the options the message names); off, the model's
    likelihood alone chooses, and still only among the actions allowed now."""
    model = tiny_local_model()
    assert classify_all(model, hints=True) == PHRASES
    unhinted = classify_all(model, hints=False)
    assert unhinted != PHRASES
    assert {action for action, _ in unhinted.values()} <= {"edit", "plan_first", "undo", "go_to_version"}
    # A turn that brings a new image edits it: only edit and plan_first are offered, whatever the words say.
    request = classify_turn(model, "undo that", versions=made_versions(1), current=0, may_switch=False)
    assert request["action"] in ("edit", "plan_first")


def test_any_chat_model_classifies_and_an_answer_outside_the_choices_is_an_edit():
    said = ScriptedChatModel(responses=[AIMessage(content='{"action": "go_to_version", "version": 1}')])
    request = classify_turn(said, "show version 1", versions=made_versions(3), current=2)
    assert request == {"action": "go_to_version", "text": "show version 1", "version": 1}
    assert "Allowed actions now: edit, plan_first, undo, go_to_version" in said.seen[0][0].content
    for answer in (
        '{"action": "undo", "version": 0}',
        '{"action": "go_to_version", "version": 7}',
        "no json",
    ):
        model = ScriptedChatModel(responses=[AIMessage(content=answer)])
        # undo is not offered with a new image; version 7 does not exist; the last is no answer at all
        request = classify_turn(model, "undo it", versions=made_versions(2), current=1, may_switch=False)
        assert request["action"] == "edit" and request["note"], request


@pytest.mark.slow
def test_the_offline_default_model_classifies_the_turns():
    """SmolLM2-135M-Instruct (the offline default) through the same call: with hints on (the default) every
    phrase is classified as asked."""
    from pixplan.graph.models import cached_chat_model

    model = cached_chat_model("local:smollm2")
    assert classify_all(model, hints=True) == PHRASES

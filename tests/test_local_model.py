"""LocalChatModel: TRL's template and parser, and schema-constrained decoding that is valid even from random weights."""

from __future__ import annotations

import re
from typing import Literal

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field
from tiny_lm import tiny_local_model, tiny_tokenizer

from pixplan.graph.local.chat_format import (
    DEFAULT_SYSTEM_PROMPT,
    chat_template,
    format_completion,
    format_tool_call,
    parse_completion,
    render_prompt,
    to_chat_messages,
)
from pixplan.graph.model_inputs import plan_choices
from pixplan.graph.schemas import Plan, Verdict
from pixplan.graph.usage import UsageMeter

IMAGE_ID = "0123456789abcdef01234567"
CATALOG = (
    f"Image {IMAGE_ID} (768x768). Region catalog:\n"
    'r1 text "SUMMER SALE" [0.1, 0.05, 0.9, 0.2]\nr2 object "bottle" [0.3, 0.3, 0.7, 0.9]\n'
)


@tool
def recolor(image_id: str, region: str | list[float], color: str, strength: float = 0.8) -> str:
    """Change the colour of a region.

    Args:
        image_id: The image to edit.
        region: Where: a region id from the catalog, 'whole', 'background' or a box.
        color: The new colour, a name or #rrggbb.
        strength: How strongly to recolour, 0..1.
    """
    return "ok"


@tool
def blur(image_id: str, region: str | list[float], radius: int = Field(ge=1, le=30)) -> str:
    """Blur a region.

    Args:
        image_id: The image to edit.
        region: Where.
        radius: Blur radius in pixels.
    """
    return "ok"


@tool
def set_tone(image_id: str, region: str | list[float], warmth: float, mode: Literal["soft", "hard"]) -> str:
    """Shift the tone of a region.

    Args:
        image_id: The image to edit.
        region: Where.
        warmth: Warmth change, any number.
        mode: Soft or hard light.
    """
    return "ok"


TOOLS = [recolor, blur, set_tone]
REGIONS = ["r1", "r2", "whole", "background"]
#: What the graph passes a local orchestrator: the catalog's regions (and, here, the image id these tools take).
CHOICES = {"region": REGIONS, "image_id": [IMAGE_ID]}
CATALOG_DICT = {"regions": [{"id": r} for r in REGIONS]}
TOOL_LIST = "Tools the steps can use:\n" + "\n".join(
    f"- {t.name}: {t.description.splitlines()[0]}" for t in TOOLS
)


@pytest.fixture(scope="module")
def lm():
    return tiny_local_model()


def test_template_is_trls_and_trl_recognises_it():
    from trl.chat_template_utils import qwen2_5_chat_template

    tokenizer = tiny_tokenizer()
    assert chat_template() == qwen2_5_chat_template == tokenizer.chat_template
    assert tokenizer.response_template is not None or tokenizer.response_schema is not None


def test_tool_call_round_trip_through_template_and_trl_parser():
    tokenizer = tiny_tokenizer()
    calls = [
        {"name": "recolor", "args": {"image_id": IMAGE_ID, "region": [0.1, 0.2, 0.5, 0.9], "color": "vert é"}}
    ]
    completion = format_completion("", calls)
    parsed = parse_completion(tokenizer, completion)
    assert parsed["tool_calls"] == [
        {"type": "function", "function": {"name": "recolor", "arguments": calls[0]["args"]}}
    ]
    # the template renders an assistant tool call exactly as format_tool_call writes it
    messages = to_chat_messages([HumanMessage("hi"), AIMessage("", tool_calls=[{**calls[0], "id": "1"}])])
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered.endswith(
        "<|im_start|>assistant\n" + format_tool_call("recolor", calls[0]["args"]) + "<|im_end|>\n"
    )
    # plain text parses as content
    assert parse_completion(tokenizer, format_completion("All done."))["content"] == "All done."


def test_messages_render_with_tools_and_tool_results():
    tokenizer = tiny_tokenizer()
    history = [
        SystemMessage("You edit images."),
        HumanMessage([{"type": "text", "text": "Make it green"}, {"type": "image", "base64": "AAAA"}]),
        AIMessage("", tool_calls=[{"name": "blur", "args": {"radius": 3}, "id": "c1"}]),
        ToolMessage("blurred r1", tool_call_id="c1"),
    ]
    prompt = render_prompt(
        tokenizer, to_chat_messages(history), tools=[{"type": "function", "function": {"name": "blur"}}]
    )
    assert prompt.startswith("<|im_start|>system\nYou edit images.\n\n# Tools")
    assert "Make it green\n[image]" in prompt
    assert "<tool_response>\nblurred r1\n</tool_response>" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constrained_plan_is_valid_from_random_weights(lm, seed):
    constraints = plan_choices([t.name for t in TOOLS], CATALOG_DICT)
    plan = lm.with_structured_output(Plan, **constraints).invoke(
        [
            SystemMessage("Plan the edit."),
            HumanMessage("Goal: make the ad eco-friendly.\n" + CATALOG + TOOL_LIST),
        ],
        temperature=1.0,
        seed=seed,
    )
    assert isinstance(plan, Plan)
    ids = [item.id for item in plan.checklist]
    assert ids == [f"c{i + 1}" for i in range(len(ids))]
    assert [step.id for step in plan.steps] == [f"s{i + 1}" for i in range(len(plan.steps))]
    for step in plan.steps:
        assert step.serves and set(step.serves) <= set(ids)
        assert step.instruction
        assert step.tool in ("recolor", "blur", "set_tone")  # a tool among the choices
    for item in plan.checklist:
        if item.check is not None and isinstance(item.check.region, str):
            assert item.check.region in {"r1", "r2", "whole", "background"}


def test_constrained_verdict_judges_every_checklist_item(lm):
    ids = ["c1", "c2", "c3"]
    verdict = lm.with_structured_output(
        Verdict,
        choices={"checklist.*.id": lambda ctx: [ids[ctx.path[1]]]},
        lengths={"checklist": (3, 3), "reasons": (1, None)},
    ).invoke(
        "Judge the edit. Checklist:\nc1: the slogan mentions nature\nc2: the background is green\nc3: bottle kept"
    )
    assert isinstance(verdict, Verdict)
    assert [item.id for item in verdict.checklist] == ["c1", "c2", "c3"]
    for score in (verdict.instruction_adherence, verdict.plausibility, verdict.preservation):
        assert score is None or 0 <= score <= 10
    assert verdict.reasons


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_constrained_tool_call_is_valid_from_random_weights(lm, seed):
    message = lm.bind_tools(TOOLS, choices=CHOICES).invoke(
        [HumanMessage(CATALOG + "Step s1: make the bottle green.")], temperature=1.5, seed=seed
    )
    assert message.content == ""
    (call,) = message.tool_calls
    chosen = {t.name: t for t in TOOLS}[call["name"]]
    chosen.tool_call_schema.model_validate(call["args"])  # valid arguments for the chosen tool
    assert call["args"]["image_id"] == IMAGE_ID
    assert call["args"]["region"] in {"r1", "r2", "whole", "background"}
    assert message.usage_metadata["output_tokens"] > 0 and message.usage_metadata["input_tokens"] > 100


def test_tool_choice_picks_the_tool(lm):
    message = lm.bind_tools(TOOLS, tool_choice="set_tone", choices=CHOICES).invoke(CATALOG + "Warm it up.")
    assert message.tool_calls[0]["name"] == "set_tone"
    assert message.tool_calls[0]["args"]["mode"] in ("soft", "hard")
    assert isinstance(message.tool_calls[0]["args"]["warmth"], int | float)
    text = lm.bind_tools(TOOLS, tool_choice="none").invoke("Say hi.")
    assert not text.tool_calls and isinstance(text.content, str)


class Mixed(BaseModel):
    """Every construct the decoder handles."""

    kind: Literal["a", "b", "c"]
    flag: bool
    count: int = Field(ge=0, le=7)
    ratio: float = Field(ge=0, le=1)
    offset: float
    big: int = Field(ge=0)
    tags: list[str] = Field(min_length=1, max_length=2)
    nested: Verdict | None = None
    note: str = ""
    extras: dict[str, int] = Field(default_factory=dict)


@pytest.mark.parametrize("seed", [0, 1])
def test_constrained_output_handles_literals_numbers_unions_and_dicts(lm, seed):
    value = lm.with_structured_output(Mixed).invoke("Fill it in.", temperature=1.0, seed=seed)
    assert isinstance(value, Mixed)
    assert 1 <= len(value.tags) <= 2


class Counts(BaseModel):
    at_least_three: int = Field(ge=3)
    above: float = Field(gt=-1.5)
    anything: float


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_half_bounded_numbers_are_written_within_their_bounds(lm, seed):
    value = lm.with_structured_output(Counts).invoke("Count them.", temperature=1.0 if seed else 0.0, seed=seed)
    assert isinstance(value.at_least_three, int) and value.at_least_three >= 3
    assert value.above > -1.5
    assert isinstance(value.anything, float)


def test_same_seed_same_output_and_greedy_is_deterministic(lm):
    runs = [
        lm.with_structured_output(Plan).invoke("Goal: winter.", temperature=1.0, seed=s) for s in (5, 5, 6)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert lm.invoke("Hello").content == lm.invoke("Hello").content


def test_kv_cache_reuse_gives_the_same_answer():
    warm, fresh = tiny_local_model(), tiny_local_model()
    prompt = [HumanMessage(CATALOG + "Step s1: blur the slogan.")]
    warm.bind_tools(TOOLS).invoke([*prompt, HumanMessage("other step")])  # leaves a shared prefix behind
    again = warm.bind_tools(TOOLS).invoke(prompt)
    assert again.usage_metadata["input_token_details"]["cache_read"] > 100  # the prefix was reused
    expected = fresh.bind_tools(TOOLS).invoke(prompt)
    assert expected.usage_metadata["input_token_details"]["cache_read"] == 0
    assert again.tool_calls[0]["args"] == expected.tool_calls[0]["args"]
    off = tiny_local_model(prefix_cache_size=0)
    off.bind_tools(TOOLS).invoke(prompt)
    assert off.bind_tools(TOOLS).invoke(prompt).usage_metadata["input_token_details"]["cache_read"] == 0


class Coded(BaseModel):
    code: str = Field(pattern=r"^[A-Z]{3}$")


def test_unsupported_schema_falls_back_to_reasking_and_fails_cleanly(lm):
    tracker = UsageMeter()
    runnable = lm.with_structured_output(Coded, include_raw=True)
    result = runnable.invoke("Give a code.", config={"callbacks": [tracker]})
    assert result["parsed"] is None and result["parsing_error"] is not None
    assert tracker.usage()["calls"] == lm.max_retries + 1
    with pytest.raises(OutputParserException):
        lm.with_structured_output(Coded).invoke("Give a code.")


def test_usage_meter_counts_calls_and_tokens(lm):
    tracker = UsageMeter()
    lm.bind_tools(TOOLS).invoke(CATALOG + "blur r1", config={"callbacks": [tracker]})
    lm.invoke("hi", config={"callbacks": [tracker]})
    usage = tracker.usage()
    assert usage["calls"] == 2 and usage["errors"] == 0
    assert usage["input_tokens"] > 100 and usage["output_tokens"] > 0 and usage["seconds"] > 0


def test_every_library_tool_gets_a_valid_constrained_call(lm):
    from pixplan.tools import TOOLS as LIBRARY

    for i, library_tool in enumerate(LIBRARY):
        message = lm.bind_tools(LIBRARY, tool_choice=library_tool.name, choices=CHOICES).invoke(
            CATALOG + f"Step s1: use {library_tool.name}.", temperature=1.0, seed=i
        )
        (call,) = message.tool_calls
        assert call["name"] == library_tool.name
        library_tool.tool_call_schema.model_validate(call["args"])
        schema = library_tool.tool_call_schema.model_json_schema()
        assert list(call["args"]) == list(schema["properties"])  # every argument, in schema order


@pytest.mark.parametrize("seed", [0, 1])
def test_tool_call_fills_every_argument_with_schema_valid_values(lm, seed):
    from pixplan.tools import TOOLS as LIBRARY
    from pixplan.tools.classical import parse_color

    replace_background = next(t for t in LIBRARY if t.name == "replace_background")
    prompt = CATALOG + "Step s1: paint the background sage green."
    bound = lm.bind_tools([replace_background], choices=CHOICES, hint_text="paint the background sage green")
    message = bound.invoke(prompt, temperature=1.0, seed=seed)
    args = message.tool_calls[0]["args"]
    schema = replace_background.tool_call_schema.model_json_schema()
    properties = schema["properties"]
    assert list(args) == list(properties)  # optional arguments are written too, in schema order
    replace_background.tool_call_schema.model_validate(args)
    assert args["image_id"] == IMAGE_ID
    assert args["region"] in {"r1", "r2", "whole", "background"}
    assert args["fill"] in properties["fill"]["enum"]
    for key in ("color", "second_color"):  # colours are chosen among names a colour parser knows
        assert isinstance(args[key], str) and parse_color(args[key])
    assert args["color"] != args["second_color"]  # a call's colours differ (a gradient is not flat)
    assert properties["angle"]["minimum"] <= args["angle"] <= properties["angle"]["maximum"]
    assert properties["scale"]["minimum"] <= args["scale"] <= properties["scale"]["maximum"]
    assert isinstance(args["seed"], int) and args["seed"] >= 0
    # Leaving optional arguments to the model stays possible (per call or per model): valid, required ones kept.
    lean = bound.invoke(prompt, fill_optional_args=False, seed=seed)
    replace_background.tool_call_schema.model_validate(lean.tool_calls[0]["args"])
    assert "image_id" in lean.tool_calls[0]["args"]


def test_colour_options_put_the_colours_the_step_names_first():
    from pixplan.graph.local.choices import BASE_COLOURS, ChoiceContext, colour_options

    options = colour_options("a forest green background with #2e8b57 stripes, then some tan.")
    assert options(ChoiceContext({}, ("color",)))[:4] == ["forestgreen", "#2e8b57", "tan", BASE_COLOURS[0]]
    assert set(BASE_COLOURS) <= set(options(ChoiceContext({}, ("color",))))
    # a call's colours differ: the second colour argument does not take the first one's value
    assert "forestgreen" not in options(ChoiceContext({"color": "forestgreen"}, ("second_color",)))


def test_a_nullable_colour_may_stay_the_tools_default_and_quoted_words_do_not_name_it(lm):
    """A text tool's colour may be null (the tool then picks a readable one), as training targets write it; the
    words to write ('green') are quoted and do not choose the colour, the words about the call ('gold') do."""
    from pixplan.graph.local.choices import ChoiceContext, colour_options, unquoted
    from pixplan.tools import TOOLS as LIBRARY

    assert unquoted("mention 'green' or \"eco\", don't go gold") == "mention   or  , don't go gold"
    options = colour_options("mention 'green' in gold", nullable=True)(ChoiceContext({}, ("color",)))
    assert options[:2] == [None, "gold"] and options.index("green") > options.index("white")
    replace_text = next(t for t in LIBRARY if t.name == "replace_text")
    step = "rewrite the slogan to mention 'green', in gold."
    bound = lm.bind_tools([replace_text], choices=CHOICES, hint_text=step)
    args = bound.invoke(CATALOG + "Step s1: " + step).tool_calls[0]["args"]
    assert args["color"] == "gold"  # without the unquoting 'green', named first, would win
    only_default = lm.bind_tools([replace_text], choices={**CHOICES, "color": [None]}, hint_text=step)
    args = only_default.invoke(CATALOG + "Step s1: " + step).tool_calls[0]["args"]
    assert "color" in args and args["color"] is None  # written as null, read back as None


def test_choices_follow_the_words_of_the_request_when_hints_are_on(lm):
    """Enum values, colours and regions the step names win over what a (here random) model prefers; with hints
    off the model alone chooses, as if no words were given."""
    from pixplan.graph.local.choices import hint_words, mention_score
    from pixplan.tools import TOOLS as LIBRARY

    words = hint_words("a forest green linear gradient behind the Summer Sale text.")
    assert {"forestgreen", "gradient", "summer"} <= set(words)
    assert mention_score('"linear_gradient"', words) > mention_score('"radial_gradient"', words) > 0
    assert mention_score('"forestgreen"', words) > mention_score('"green"', words) >= 1
    assert mention_score("text SUMMER SALE", words) >= 1 and mention_score("main object", words) == 0.0
    assert mention_score("0.5", words) == 0.0
    blue_to_white = hint_words("a pale blue to white gradient.")
    assert mention_score("blue", blue_to_white) > mention_score("white", blue_to_white) > 1

    by_name = {t.name: t for t in LIBRARY}
    labels = {"r1": "text SUMMER SALE", "r2": "object bottle"}
    step = "paint the background forest green with a radial gradient."
    bound = lm.bind_tools([by_name["replace_background"]], choices=CHOICES, hint_text=step, labels=labels)
    args = bound.invoke(CATALOG + "Step s1: " + step).tool_calls[0]["args"]
    assert (args["region"], args["fill"], args["color"]) == ("background", "radial_gradient", "forestgreen")
    off = bound.invoke(CATALOG + "Step s1: " + step, hints=False).tool_calls[0]["args"]
    unhinted = lm.bind_tools([by_name["replace_background"]], choices=CHOICES).invoke(
        CATALOG + "Step s1: " + step
    )
    assert off == unhinted.tool_calls[0]["args"] != args
    step = 'recolour the "SUMMER SALE" slogan gold.'
    bound = lm.bind_tools([by_name["recolor"]], choices=CHOICES, hint_text=step, labels=labels)
    args = bound.invoke(CATALOG + "Step s1: " + step).tool_calls[0]["args"]
    assert (args["region"], args["color"]) == ("r1", "gold")


def test_a_retry_never_repeats_an_excluded_call(lm):
    prompt = CATALOG + "Step s1: blur the slogan."
    first = lm.bind_tools(TOOLS, choices=CHOICES).invoke(prompt).tool_calls[0]
    rejected = [{"name": first["name"], "args": first["args"]}]
    again = lm.bind_tools(TOOLS, choices=CHOICES, exclude=rejected).invoke(prompt).tool_calls[0]
    assert (again["name"], again["args"].get("region")) != (first["name"], first["args"]["region"])
    {t.name: t for t in TOOLS}[again["name"]].tool_call_schema.model_validate(again["args"])


def test_no_system_message_gets_the_default_system_prompt_not_another_vendors():
    prompt = render_prompt(tiny_tokenizer(), to_chat_messages([HumanMessage("hi")]))
    assert prompt.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM_PROMPT}<|im_end|>")
    assert "Qwen" not in prompt and "Alibaba" not in prompt


def test_prompt_lists_tools_compactly_and_the_decoder_keeps_the_full_schema():
    from pixplan.tools import TOOLS as LIBRARY

    tokenizer = tiny_tokenizer()
    specs = [convert_to_openai_tool(t) for t in LIBRARY]
    chat = to_chat_messages([HumanMessage("Step s1: blur r1.")])
    compact = render_prompt(tokenizer, chat, specs)
    full = tokenizer.apply_chat_template(chat, tools=specs, tokenize=False, add_generation_prompt=True)
    assert len(tokenizer.encode(compact)) * 3 < len(tokenizer.encode(full))
    for spec in specs:
        assert f'"name": "{spec["function"]["name"]}"' in compact


def test_max_tokens_stop_and_timeout_are_honoured(lm):
    short = lm.invoke("Hello", max_tokens=3)
    assert short.usage_metadata["output_tokens"] <= 4  # three tokens and the end of turn
    text = lm.invoke("Hello", max_tokens=20).content
    stop = text[3:6]
    assert stop and lm.invoke("Hello", max_tokens=20, stop=[stop]).content == text[: text.index(stop)]
    with pytest.raises(TimeoutError):
        lm.invoke("Hello", max_tokens=50, timeout=0.0)


def test_streaming_yields_pieces_and_usage_on_the_last_chunk(lm):
    chunks = list(lm.stream("Hello", max_tokens=8))
    assert len(chunks) > 2 and chunks[-1].chunk_position == "last"
    assert chunks[-1].usage_metadata["output_tokens"] > 0
    assert all(not c.usage_metadata for c in chunks[:-1])
    assert "".join(c.content for c in chunks) == lm.invoke("Hello", max_tokens=8).content
    call = list(lm.bind_tools(TOOLS, choices=CHOICES).stream(CATALOG + "blur r1"))
    merged = call[0]
    for chunk in call[1:]:
        merged += chunk
    assert merged.tool_calls and merged.tool_calls[0]["name"] in {t.name for t in TOOLS}


def test_structured_output_takes_typeddicts_and_json_schema_dicts(lm):
    from typing_extensions import TypedDict

    class Pick(TypedDict):
        """A choice."""

        kind: Literal["a", "b"]
        count: int

    value = lm.with_structured_output(Pick).invoke("Pick.")
    assert value["kind"] in ("a", "b") and isinstance(value["count"], int)
    schema = {
        "title": "Pick",
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
    }
    assert isinstance(lm.with_structured_output(schema).invoke("Ok?")["ok"], bool)


def test_cjk_bytes_are_allowed_inside_constrained_strings():
    """Byte-level BPE writes a CJK character as several byte tokens that each decode to U+FFFD; they must be
    allowed inside a string (they join into the character), and a string may not close between them."""
    from pixplan.graph.local.decoding import Vocab

    tokenizer = tiny_tokenizer()
    vocab = Vocab(tokenizer, len(tokenizer))
    pieces = tokenizer.encode("日本", add_special_tokens=False)
    assert len(pieces) > 2 and all("\ufffd" in vocab.texts[i] for i in pieces)
    assert all(vocab.safe[i] for i in pieces)
    assert tokenizer.decode(pieces) == "日本"
    parsed = parse_completion(tokenizer, format_completion("", [{"name": "t", "args": {"text": "日本の夏"}}]))
    assert parsed["tool_calls"][0]["function"]["arguments"] == {"text": "日本の夏"}


def test_the_local_package_reads_nothing_out_of_the_prompt():
    """Choices are passed in (`bind_tools(..., choices=...)`), never parsed back out of the prompt's text."""
    from pathlib import Path

    import pixplan.graph.local as package

    source = "\n".join(p.read_text() for p in Path(package.__file__).parent.glob("*.py"))
    for marker in (
        "<|im_start|>user",
        "prompt_text",
        "findall(ctx.prompt",
        "r\\d+",
        "c\\d+",
        "- r",
        "schema is Plan",
    ):
        assert marker not in source, marker
    # The only patterns are those that read the hint text the caller passes (colours, words, quoted spans,
    # spatial relations), each a named module constant; any other `re.compile` fails here.
    compiled = re.findall(r"^(\w+) = re\.compile\(", source, flags=re.MULTILINE)
    assert source.count("re.compile(") == len(compiled)
    assert set(compiled) == {"_HEX_COLOUR", "_COLOUR_WORD", "_WORD", "_QUOTED", "_RELATION"}


def test_a_union_inside_a_union_is_scored_by_how_its_values_open():
    """A checklist item's check is a discriminated union of check types, or null. The decoder scores the two
    branches by their opening text; the object branch once opened as "0" (a number), which no model writes
    there, so no trained planner ever chose a typed check. Each branch's opening must begin what it writes."""
    from pixplan.graph.checks import ChecklistItem, ColorInRange
    from pixplan.graph.local.chat_format import format_json
    from pixplan.graph.local.json_schema import opener, resolve

    schema = Plan.model_json_schema()
    defs = schema["$defs"]
    branches = [resolve(branch, defs) for branch in defs["ChecklistItem"]["properties"]["check"]["anyOf"]]
    openers = [opener(branch, defs) for branch in branches]
    item = ChecklistItem(id="c1", text="green", check=ColorInRange(region="background", stat="hue", min=75, max=165))
    written = format_json(item.model_dump(mode="json"))
    assert f'"check": {openers[0]}' in written and len(openers[0]) > 1
    assert openers[1] == "null" and '"check": null' in format_json({**item.model_dump(mode="json"), "check": None})


def test_options_are_scored_as_the_tokenizer_writes_them_after_the_buffered_text():
    """`scores` tokenizes each option with the buffered text (`}}` then `, {` is written `}` `},` ` {`), feeds the
    shared tokens once and counts an option's last token as every token that starts with its text. Each score
    equals that log-likelihood computed by a plain forward pass of the prompt and the option's own tokens."""
    import torch

    from pixplan.graph.local.decoding import ConstrainedDecoder, Vocab

    lm = tiny_local_model()
    tokenizer, model = lm.tokenizer, lm.model
    vocab = Vocab(tokenizer, model.get_output_embeddings().weight.shape[0])
    prompt = tokenizer.encode('{"items": [{"max": 1.0', add_special_tokens=False)
    buffered, options = "}}", [', {"id"', "]", ']}, "next"']
    decoder = ConstrainedDecoder(model=model, tokenizer=tokenizer, vocab=vocab, prompt_ids=prompt)
    decoder.force(buffered)
    scores = decoder.scores(options)
    joint = [tokenizer.encode(buffered + option, add_special_tokens=False) for option in options]
    shared = 0
    while all(len(ids) > shared + 1 and ids[shared] == joint[0][shared] for ids in joint):
        shared += 1
    for option, ids, score in zip(options, joint, scores, strict=True):
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([prompt + ids])).logits[0], dim=-1)
        own = range(len(prompt) + shared, len(prompt) + len(ids))
        expected = sum(float(logprobs[i - 1, (prompt + ids)[i]]) for i in list(own)[:-1])
        last = logprobs[len(prompt) + len(ids) - 2]
        expected += float(torch.logsumexp(last[vocab.starting_with(ids[-1])], dim=0))
        assert score == pytest.approx(expected, abs=1e-3), option
    # What the options share of the buffered text is fed; the rest stays buffered for the chosen option.
    assert decoder.generated == joint[0][:shared]
    assert tokenizer.decode(decoder.generated) + decoder._pending == buffered


def test_a_region_is_hinted_by_what_the_call_edits_not_by_a_landmark_or_the_thing_it_adds(lm):
    """ "Left of the bottle" places an icon beside the bottle, and "a badge reading 'SALE'" names the new badge, not
    the catalog's: neither region is forced on the model (it chooses as with hints off); a step that names the
    region it edits still gets it."""
    from pixplan.graph.local.choices import landmarks, region_mentions
    from pixplan.tools import TOOLS as LIBRARY

    assert landmarks("a star in the free space left of the product photo, in gold") == {"product", "photo"}
    assert landmarks("next to 'the logo'") == set()  # quoted words are text to write
    badge_step = "a badge reading 'SALE' is added in the free space at the bottom right"
    assert "badge" not in region_mentions(badge_step, "add_badge")
    assert "badge" in region_mentions("remove the old badge", "remove_object")

    by_name = {t.name: t for t in LIBRARY}
    regions = ["r1", "r2", "r3", "whole", "background"]
    labels = {"r1": "text SUMMER SALE", "r2": "object bottle", "r3": "badge"}
    catalog = CATALOG + 'r3 object "badge" [0.8, 0.02, 0.95, 0.15]\n'
    for name, step in [
        ("add_icon", "a star icon is added in the free space left of the bottle."),
        ("add_badge", badge_step + "."),
    ]:
        bound = lm.bind_tools(
            [by_name[name]], choices={**CHOICES, "region": regions}, hint_text=step, labels=labels
        )
        hinted = bound.invoke(catalog + "Step s1: " + step).tool_calls[0]["args"]["region"]
        unhinted = bound.invoke(catalog + "Step s1: " + step, hints=False).tool_calls[0]["args"]["region"]
        assert hinted == unhinted
        named = "it is added on the bottle."
        bound = lm.bind_tools(
            [by_name[name]], choices={**CHOICES, "region": regions}, hint_text=named, labels=labels
        )
        assert bound.invoke(catalog + "Step s1: " + named).tool_calls[0]["args"]["region"] == "r2"

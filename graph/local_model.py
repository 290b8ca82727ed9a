"""A local transformers causal LM as a LangChain chat model, with tool calling and schema-constrained decoding.

What is trained is what is served: prompts are rendered with TRL's ``qwen2_5.jinja`` chat template (ChatML
tokens, the same as SmolLM2's), tool calls are written exactly as that template renders them::

    <tool_call>
    {"name": "recolor", "arguments": {"image_id": "3fa9...", "region": "r2", "color": "green"}}
    </tool_call><|im_end|>

and completions are parsed with TRL's own `parse_response`. The training code imports `chat_template`,
`prepare_tokenizer`, `to_chat_messages`, `render_prompt`, `format_tool_call`, `format_completion` and
`parse_completion` from here, so the formats cannot drift apart.

A 135M model cannot be trusted to write valid JSON, so the decoder writes the JSON structure itself and lets
the model choose only where the schema leaves a choice (`ConstrainedDecoder`):

- enum / Literal / const values, booleans, tool names, ``anyOf`` branches and hinted strings (region ids and
  image ids found in the prompt, checklist ids of the plan being written, colour names for a tool's colour
  arguments) are chosen by the model's log-likelihood among the allowed options (sampled from it when
  ``temperature > 0``);
- a tool call writes every argument of the chosen tool, optional ones included, in schema order (left to
  itself a small model ends the arguments at once and every default applies);
- free strings are generated token by token (tokens without quotes, backslashes or control characters)
  until the model closes the quote or a length cap;
- bounded numbers are chosen among a grid of the allowed range (and the schema's default), unbounded ones
  digit by digit;
- arrays get a model-chosen length between the schema's bounds and a cap.

All of it runs on one KV cache (``past_key_values``), forwarding only new tokens. Schemas the decoder does not
handle (patterns, tuples, ...) fall back to generate -> parse -> validate -> re-ask with the error (bounded).

torch and transformers are imported when a model is loaded, not when this module is imported.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

#: The TRL chat template every local model is served (and trained) with.
CHAT_TEMPLATE_NAME = "qwen2_5"

# ---------------------------------------------------------------------------------------------------------------
# Formats shared with training
# ---------------------------------------------------------------------------------------------------------------


def chat_template() -> str:
    """The text of TRL's ``qwen2_5.jinja`` (read from the installed trl package, byte for byte).

    TRL recognises a template only on an exact string match, so it is read, never copied.
    """
    spec = importlib.util.find_spec("trl")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("local models need TRL's chat templates: pip install 'pixplan[local]'")
    path = (
        Path(next(iter(spec.submodule_search_locations))) / "chat_templates" / f"{CHAT_TEMPLATE_NAME}.jinja"
    )
    return path.read_text(encoding="utf-8")


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give a tokenizer TRL's qwen2_5 chat template and TRL's matching response parser (in place)."""
    from trl.chat_template_utils import add_response_schema

    tokenizer.chat_template = chat_template()
    add_response_schema(tokenizer)
    return tokenizer


def _text_of(content: Any) -> str:
    """Plain text of a message's content; image blocks become a placeholder (local models are text-only)."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif block.get("type") == "text":
            parts.append(block.get("text", ""))
        elif block.get("type") in ("image", "image_url"):
            parts.append("[image]")
    return "\n".join(parts)


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as chat-template dicts (roles system/user/assistant/tool, OpenAI-style tool calls)."""
    chat: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            chat.append({"role": "system", "content": _text_of(message.content)})
        elif isinstance(message, HumanMessage):
            chat.append({"role": "user", "content": _text_of(message.content)})
        elif isinstance(message, AIMessage):
            entry: dict[str, Any] = {"role": "assistant", "content": _text_of(message.content)}
            if message.tool_calls:
                entry["tool_calls"] = [
                    {"type": "function", "function": {"name": call["name"], "arguments": call["args"]}}
                    for call in message.tool_calls
                ]
            chat.append(entry)
        elif isinstance(message, ToolMessage):
            chat.append({"role": "tool", "content": _text_of(message.content)})
        else:
            chat.append({"role": "user", "content": _text_of(message.content)})
    return chat


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict] | None = None) -> str:
    """The prompt text: the chat template applied with the generation prompt (``<|im_start|>assistant\\n``)."""
    return tokenizer.apply_chat_template(
        messages, tools=tools or None, tokenize=False, add_generation_prompt=True
    )


def format_json(value: Any) -> str:
    """JSON exactly as the chat template's ``tojson`` writes it (default separators, non-ASCII kept)."""
    return json.dumps(value, ensure_ascii=False)


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """One tool call as the template renders it in an assistant turn."""
    return (
        f'<tool_call>\n{{"name": {format_json(name)}, "arguments": {format_json(arguments)}}}\n</tool_call>'
    )


def format_completion(content: str = "", tool_calls: Sequence[dict[str, Any]] = ()) -> str:
    """An assistant completion (the text after ``<|im_start|>assistant\\n``), ending with ``<|im_end|>``.

    ``tool_calls`` are ``{"name", "args"}`` dicts (LangChain's) or ``{"name", "arguments"}``.
    """
    calls = [
        format_tool_call(call["name"], call.get("args", call.get("arguments", {}))) for call in tool_calls
    ]
    if content and calls:
        return content + "\n" + "\n".join(calls) + "<|im_end|>"
    return (content or "\n".join(calls)) + "<|im_end|>"


def parse_completion(
    tokenizer: Any,
    completion: str | Sequence[int],
    prefix: str | Sequence[int] | None = None,
    tools: list[dict] | None = None,
) -> dict[str, Any]:
    """Parse a completion (text or token ids) with TRL's `parse_response`, as TRL's trainers do.

    `prefix` is the prompt (text or ids; by default just the assistant header ``<|im_start|>assistant\n``).
    Returns ``{"role", "content", "tool_calls"?}`` with OpenAI-style calls:
    ``{"type": "function", "function": {"name", "arguments": dict}}``.
    """
    from trl.chat_template_utils import parse_response

    if not getattr(tokenizer, "response_template", None) and not getattr(tokenizer, "response_schema", None):
        prepare_tokenizer(tokenizer)

    def ids_of(value: str | Sequence[int]) -> list[int]:
        return tokenizer.encode(value, add_special_tokens=False) if isinstance(value, str) else list(value)

    prefix_ids = ids_of("<|im_start|>assistant\n" if prefix is None else prefix)
    return parse_response(tokenizer, ids_of(completion), prefix=prefix_ids, tools=tools or None)


# ---------------------------------------------------------------------------------------------------------------
# Choice hints: where a string must be one of a few known values
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ChoiceContext:
    """What a choice hint sees: the prompt text, the value decoded so far and the path being decoded."""

    prompt: str
    root: Any
    path: tuple[str | int, ...]


#: A hint is a list of allowed values, or a function of the context returning one (None: no constraint).
Choices = Sequence[Any] | Callable[[ChoiceContext], Sequence[Any] | None]

_REGION_ID = re.compile(r"(?<![\w-])(r\d+)(?![\w-])")
_IMAGE_ID = re.compile(r"(?<![0-9a-f])([0-9a-f]{24})(?![0-9a-f])")


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def region_choices(ctx: ChoiceContext) -> list[str]:
    """Region ids of the catalog shown in the prompt (``r1``, ``r2``...), then ``whole`` and ``background``."""
    return [*_unique(_REGION_ID.findall(ctx.prompt)), "whole", "background"]


def image_id_choices(ctx: ChoiceContext) -> list[str] | None:
    """Image ids (24 hex digits) shown in the prompt, most recent last; None (free string) when there are none."""
    ids = _unique(_IMAGE_ID.findall(ctx.prompt)[::-1])[::-1]
    return ids or None


#: Hints applied to every tool call's arguments (keys are argument paths; ``*`` matches any key or index).
TOOL_CHOICES: dict[str, Choices] = {"region": region_choices, "image_id": image_id_choices}

#: Colours a colour argument chooses among (CSS names every colour parser knows), after those the request names.
BASE_COLOURS = (
    "white",
    "black",
    "gray",
    "beige",
    "red",
    "crimson",
    "orange",
    "gold",
    "yellow",
    "green",
    "forestgreen",
    "seagreen",
    "olivedrab",
    "lightgreen",
    "teal",
    "skyblue",
    "blue",
    "navy",
    "purple",
    "pink",
    "brown",
)

_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}\b")
_COLOUR_WORD = re.compile(r"\b(colou?r)\b", re.IGNORECASE)


def _request_text(prompt: str) -> str:
    """The prompt's last user turn (the step to execute; the system turn and tool schemas name example colours)."""
    start = prompt.rfind("<|im_start|>user")
    return prompt[start:] if start != -1 else prompt


def colour_choices(ctx: ChoiceContext) -> list[str]:
    """CSS colour names and hex codes the last user turn mentions ("green", "forest green", "#2e8b57"), in the
    order they appear, then `BASE_COLOURS`, less the colours the call's earlier arguments took."""
    from PIL import ImageColor

    text = _request_text(ctx.prompt)
    found: list[tuple[int, str]] = [(m.start(), m.group(0).lower()) for m in _HEX_COLOUR.finditer(text)]
    words = [(m.start(), m.group(0).lower()) for m in re.finditer(r"[A-Za-z]+", text)]
    i = 0
    while i < len(words):  # two-word names first ("forest green" -> forestgreen, not also "green")
        start, word = words[i]
        if i + 1 < len(words) and word + words[i + 1][1] in ImageColor.colormap:
            found.append((start, word + words[i + 1][1]))
            i += 1
        elif word in ImageColor.colormap:
            found.append((start, word))
        i += 1
    options = _unique([name for _, name in sorted(found)] + list(BASE_COLOURS))
    # A call's colours differ from each other (a gradient's second colour, a badge's text on the badge).
    args = ctx.root if isinstance(ctx.root, dict) and len(ctx.path) == 1 else {}
    taken = {value for key, value in args.items() if key != ctx.path[0] and isinstance(value, str)}
    return [option for option in options if option not in taken]


_WORD = re.compile(r"[a-z]+")


def request_words(prompt: str) -> dict[str, int]:
    """The words that say what a tool call should do, each with the position of its first occurrence: the last
    user turn up to its first list line (``- ...``: a region catalog, earlier attempts), lower case, with each
    pair of neighbours also run together ("forest green" -> "forestgreen", at the position of "forest")."""
    lines = []
    for line in _request_text(prompt).splitlines()[1:]:
        if line.startswith("- "):
            break
        lines.append(line)
    words = _WORD.findall("\n".join(lines).lower())
    found: dict[str, int] = {}
    for i, (a, b) in enumerate(itertools.pairwise([*words, ""])):
        found.setdefault(a, i)
        if b:
            found.setdefault(a + b, i)
    return found


_CATALOG_LINE = re.compile(r"^- (r\d+) \([\w ]+\): (.*?)(?: box \[|$)", re.MULTILINE)


def region_aliases(prompt: str) -> dict[str, str]:
    """What each catalog region of the prompt is called (``- r2 (text): text "Morning Brew" ...`` -> ``"r2"``:
    "text Morning Brew"), so a request naming a region's text or kind steers the region choice to it."""
    return {format_json(rid): label.replace('"', "") for rid, label in _CATALOG_LINE.findall(prompt)}


def _named_at(word: str, mentions: dict[str, int]) -> int | None:
    """Where the request first names `word` (also as an inflection: "gradient"/"gradients", "green"/"greener")."""
    if word in mentions:
        return mentions[word]
    if len(word) < 4:
        return None
    places = [i for m, i in mentions.items() if len(m) >= 4 and (m.startswith(word) or word.startswith(m))]
    return min(places, default=None)


def mention_score(option: str, mentions: dict[str, int]) -> float:
    """The share of an option's words (``"linear_gradient"``: linear, gradient; words of 3+ letters) that the
    request names, 0 for numbers, ids ("r2") and options it does not name; among options named alike, the one
    named first scores a little higher ("forestgreen" before "green" in "forest green", and of "blue to white"
    the first colour argument takes blue, the next one white).

    A 135M model follows the prompt's words poorly when it picks an enum value, a colour or a region (the
    log-likelihood of a choice also favours short options), so in a tool call only the options the request names
    best compete, and the model's likelihood decides among them (among all options when it names none)."""
    words = [w for w in _WORD.findall(option.lower()) if len(w) >= 3]
    places = [i for i in (_named_at(w, mentions) for w in words) if i is not None]
    if not places:
        return 0.0
    return len(places) / len(words) + 0.001 / (1 + min(places))


def _allows_string(schema: dict[str, Any]) -> bool:
    kinds = [schema.get("type")] + [branch.get("type") for branch in schema.get("anyOf", [])]
    return "string" in kinds and "enum" not in schema and "const" not in schema


def argument_choices(parameters: dict[str, Any]) -> dict[str, Choices]:
    """Hints from a tool's parameter schema: a string argument whose name or description says colour chooses
    among colour names (`colour_choices`) instead of free text a small model writes badly."""
    hints: dict[str, Choices] = {}
    for key, schema in parameters.get("properties", {}).items():
        says_colour = "color" in key or "colour" in key or _COLOUR_WORD.search(schema.get("description", ""))
        if says_colour and _allows_string(schema):
            hints[key] = colour_choices
    return hints


def _indexed_id(prefix: str) -> Callable[[ChoiceContext], list[str]]:
    return lambda ctx: [f"{prefix}{ctx.path[1] + 1}"]


_LISTED_NAME = re.compile(r"^- ([a-z][a-z_]*[a-z]): ", re.MULTILINE)


def listed_tool_names(ctx: ChoiceContext) -> list[str] | None:
    """Tool names listed in the prompt as ``- name: description`` lines (how pixplan's planner prompt lists
    them); None (a free string) when there are none."""
    return _unique(_LISTED_NAME.findall(ctx.prompt)) or None


def _checklist_ids(ctx: ChoiceContext) -> list[str]:
    return [
        item["id"]
        for item in (ctx.root or {}).get("checklist", [])
        if isinstance(item, dict) and "id" in item
    ]


def _prompt_checklist_ids(ctx: ChoiceContext) -> list[str] | None:
    ids = _unique(re.findall(r"(?<![\w-])(c\d+)(?![\w-])", ctx.prompt))
    return ids or None


def _nth_prompt_checklist_id(ctx: ChoiceContext) -> list[str] | None:
    ids = _prompt_checklist_ids(ctx) or []
    return [ids[ctx.path[1]]] if ctx.path[1] < len(ids) else None


def default_choices(schema: Any) -> dict[str, Choices]:
    """Hints for pixplan's own structured outputs: plan ids are numbered, steps serve the plan's checklist ids and
    name a tool listed in the prompt, check regions are catalog regions, a verdict's items are the checklist ids
    of the prompt."""
    from pixplan.graph.schemas import Plan, Verdict

    hints: dict[str, Choices] = {}
    if schema is Plan:
        hints |= {
            "checklist.*.id": _indexed_id("c"),
            "steps.*.id": _indexed_id("s"),
            "steps.*.serves.*": _checklist_ids,
            "steps.*.tool": listed_tool_names,
            "checklist.*.check.region": region_choices,
        }
    elif schema is Verdict:
        hints |= {"checklist.*.id": _nth_prompt_checklist_id}
    return hints


#: Array length bounds (min, max or None) beyond the schema's, or a function of the context returning them.
Lengths = tuple[int, int | None] | Callable[[ChoiceContext], tuple[int, int | None]]


def _one_per_prompt_item(ctx: ChoiceContext) -> tuple[int, int | None]:
    count = len(_prompt_checklist_ids(ctx) or [])
    return (count, count) if count else (0, None)


def default_lengths(schema: Any) -> dict[str, Lengths]:
    """Array lengths for pixplan's outputs: every step serves at least one checklist item, and a verdict
    gives at least one reason and judges each checklist item of the prompt once."""
    from pixplan.graph.schemas import Plan, Verdict

    if schema is Plan:
        return {"steps.*.serves": (1, None)}
    if schema is Verdict:
        return {"checklist": _one_per_prompt_item, "reasons": (1, None)}
    return {}


def _match(pattern: str, path: tuple[str | int, ...]) -> bool:
    parts = pattern.split(".")
    return len(parts) == len(path) and all(p == "*" or p == str(k) for p, k in zip(parts, path, strict=True))


# ---------------------------------------------------------------------------------------------------------------
# Constrained decoding
# ---------------------------------------------------------------------------------------------------------------


class UnsupportedSchema(ValueError):
    """A JSON schema construct the constrained decoder does not handle (the caller falls back to re-asking)."""


_UNSUPPORTED_KEYS = ("pattern", "patternProperties", "prefixItems", "not", "if", "uniqueItems", "multipleOf")


def check_schema(
    schema: dict[str, Any], defs: dict[str, Any] | None = None, _seen: frozenset = frozenset()
) -> None:
    """Raise `UnsupportedSchema` if the decoder cannot guarantee a valid value for `schema`."""
    defs = schema.get("$defs", {}) if defs is None else defs
    if "$ref" in schema:
        ref = schema["$ref"]
        if ref in _seen:
            raise UnsupportedSchema(f"recursive schema {ref}")
        check_schema(_resolve(schema, defs), defs, _seen | {ref})
        return
    for key in _UNSUPPORTED_KEYS:
        if key in schema:
            raise UnsupportedSchema(f"schema keyword {key!r}")
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            check_schema(sub, defs, _seen)
    for sub in schema.get("properties", {}).values():
        check_schema(sub, defs, _seen)
    if isinstance(schema.get("items"), dict):
        check_schema(schema["items"], defs, _seen)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**defs[name], **rest}
    if "allOf" in schema and len(schema["allOf"]) == 1:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        schema = {**_resolve(schema["allOf"][0], defs), **rest}
    return schema


class _Vocab:
    """Per-tokenizer token classes for constrained decoding (computed once)."""

    def __init__(self, tokenizer: Any, size: int):
        import torch

        special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
        texts = [""] * size
        for i in range(min(size, len(tokenizer))):
            if i not in special:
                texts[i] = tokenizer.decode([i])
        self.texts = texts
        safe = torch.zeros(size, dtype=torch.bool)
        closing = torch.zeros(size, dtype=torch.bool)
        numeric = torch.zeros(size, dtype=torch.bool)
        for i, text in enumerate(texts):
            if not text or "\ufffd" in text or "\\" in text or any(ord(c) < 32 for c in text):
                continue
            quote = text.find('"')
            if quote == -1:
                safe[i] = True
            else:  # '"', '",', '."}' ...: the model closing the string (what follows the quote is not kept)
                closing[i] = True
            if all(c in "0123456789.-" for c in text):
                numeric[i] = True
        self.safe, self.closing, self.numeric = safe, closing, numeric
        self.stop_ids = sorted(
            {
                i
                for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"))
                if i is not None
            }
        )
        self.text = torch.tensor([bool(t) for t in texts])  # ordinary tokens (no special ones)
        self.text[self.stop_ids] = True


_CACHE_ARG: str | None = None


@dataclass
class DecodeSettings:
    """Limits and sampling of one constrained generation."""

    temperature: float = 0.0
    max_string_chars: int = 120
    max_array_items: int = 5
    max_number_chars: int = 8
    no_repeat_ngram: int = 3
    include_optional: bool = True


@dataclass
class ConstrainedDecoder:
    """Writes text after a prompt on one KV cache: forced text, choices among options, constrained values."""

    model: Any
    tokenizer: Any
    vocab: _Vocab
    prompt_ids: list[int]
    prompt_text: str = ""
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    generator: Any = None
    choices: dict[str, Choices] = field(default_factory=dict)
    lengths: dict[str, Lengths] = field(default_factory=dict)
    prefix: tuple[list[int], Any] | None = None  # (ids, KV cache) of an earlier prompt, handed over
    mentions: dict[str, int] = field(default_factory=dict)  # words steering choices (see `mention_score`)
    aliases: dict[str, str] = field(
        default_factory=dict
    )  # option -> the words it is scored by ('"r2"' -> ...)

    def __post_init__(self) -> None:
        global _CACHE_ARG
        from transformers import DynamicCache

        if _CACHE_ARG is None:  # transformers >= 5.24 renamed past_key_values to cache
            _CACHE_ARG = (
                "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
            )

        self.generated: list[int] = []
        self._pending = ""
        self.logprobs = None
        reused = 0
        if self.prefix is not None:  # the KV cache of an earlier prompt: keep what it shares with this one
            reused = _common_prefix(self.prefix[0], self.prompt_ids[:-1])
        if reused:
            self.cache = self.prefix[1]
            self._crop_to(reused)
        else:
            self.cache = DynamicCache(config=self.model.config)
        self.prefix = None
        self._forward(self.prompt_ids[reused:])
        self.reused_tokens = reused

    def _crop_to(self, length: int) -> None:
        extra = self.cache.get_seq_length() - length
        if extra > 0:
            self.cache.crop(-extra)

    def release(self) -> tuple[list[int], Any]:
        """The prompt's ids and its KV cache (the decoder's cache, cropped back: the decoder is done with it),
        for a later prompt that starts the same way."""
        self._crop_to(len(self.prompt_ids))
        return list(self.prompt_ids), self.cache

    # -- low level ------------------------------------------------------------------------------------------
    def _forward(self, ids: list[int], every_position: bool = False, **extra: Any):
        """Feed ids after the cache; returns log-probs after the last fed position, or after each of them."""
        import torch

        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([ids], dtype=torch.long),
                use_cache=True,
                logits_to_keep=0 if every_position else 1,
                **{_CACHE_ARG: self.cache},
                **extra,
            )
        logprobs = torch.log_softmax(out.logits[0].float(), dim=-1)
        self.logprobs = logprobs[-1]
        return logprobs

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def force(self, text: str) -> None:
        """Append fixed text (buffered until the model next has to choose)."""
        self._pending += text

    def _flush(self, hold_space: bool = False) -> None:
        """Feed the buffered text. With `hold_space`, a trailing space stays buffered, to be tokenized with what
        follows (``": "`` then ``"r1"`` reads as the tokenizer would write it: ``":``, ``Ġ"``...)."""
        text = self._pending
        held = ""
        if hold_space and text.endswith(" ") and len(text) > 1:
            text, held = text[:-1], " "
        if text:
            ids = self._encode(text)
            self._forward(ids)
            self.generated += ids
        self._pending = held

    def _pick(self, scores):
        """Index of the chosen score: argmax, or a sample at the settings' temperature."""
        import torch

        if self.settings.temperature <= 0:
            return int(torch.argmax(scores))
        probs = torch.softmax(scores / self.settings.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))

    def _step(self, token: int) -> None:
        self._forward([token])
        self.generated.append(token)

    def decide(self, options: Sequence[str]) -> int:
        """Index of the text among `options` the model prefers after what is written (nothing is appended).

        Scored by the log-likelihood of each whole text, in one forward: the buffered text's tokens, then every
        option's tokens packed after them with a block attention mask (each option sees the cache, the buffered
        text and its own tokens). The cache keeps the buffered text and drops the options.
        """
        import torch

        if len(options) == 1:
            return 0
        text, held = self._pending, ""
        if text.endswith(" ") and len(text) > 1:  # see _flush: the space is tokenized with the option
            text, held = text[:-1], " "
        elif text == " ":
            text, held = "", " "
        pending = self._encode(text) if text else []
        encoded = [self._encode(held + option) for option in options]
        before, count = self.cache.get_seq_length(), len(pending)
        size = count + sum(len(ids) for ids in encoded)
        mask = torch.zeros(1, 1, size, before + size, dtype=torch.bool)
        mask[..., :before] = True
        mask[0, 0, :count, before : before + count] = torch.ones(count, count, dtype=torch.bool).tril()
        positions, starts, start = list(range(before, before + count)), [], count
        for ids in encoded:
            starts.append(start)
            mask[0, 0, start : start + len(ids), before : before + count] = True
            for j in range(len(ids)):
                mask[0, 0, start + j, before + start : before + start + j + 1] = True
                positions.append(before + count + j)
            start += len(ids)
        logprobs = self._forward(
            [*pending, *(t for ids in encoded for t in ids)],
            every_position=True,
            attention_mask=mask,
            position_ids=torch.tensor([positions]),
        )
        self._crop_to(before + count)
        base = logprobs[count - 1] if count else self.logprobs
        self.logprobs = base
        self.generated += pending
        self._pending = held
        scores = [
            float(base[ids[0]] + sum(logprobs[s + j - 1, ids[j]] for j in range(1, len(ids))))
            for ids, s in zip(encoded, starts, strict=True)
        ]
        if self.mentions:  # the options the request names best win; likelihood decides among them
            named = [mention_score(self.aliases.get(option, option), self.mentions) for option in options]
            best = max(named)
            if best > 0:
                scores = [score if n == best else -math.inf for score, n in zip(scores, named, strict=True)]
        return self._pick(torch.tensor(scores))

    def choose(self, options: Sequence[str]) -> int:
        """Append the text among `options` that the model prefers (see `decide`); returns its index."""
        index = self.decide(options)
        self.force(options[index])
        return index

    def _sample_masked(self, mask):
        import torch

        scores = torch.where(mask, self.logprobs, torch.tensor(float("-inf")))
        return self._pick(scores)

    def _ban_repeats(self, mask, history: list[int]):
        n = self.settings.no_repeat_ngram
        if n <= 1 or len(history) < n - 1:
            return mask
        tail = tuple(history[-(n - 1) :])
        banned = [
            history[i + n - 1] for i in range(len(history) - n + 1) if tuple(history[i : i + n - 1]) == tail
        ]
        if banned:
            mask = mask.clone()
            mask[banned] = False
        return mask

    # -- free text ------------------------------------------------------------------------------------------
    def free_string(self, *, min_chars: int = 1, max_chars: int | None = None) -> str:
        """A JSON string's characters after its opening quote, up to and including the closing quote."""
        max_chars = self.settings.max_string_chars if max_chars is None else max_chars
        self._flush()
        text, history = "", []
        while True:
            if len(text) >= max_chars:
                self.force('"')
                return text
            mask = self.vocab.safe.clone()
            if len(text) >= min_chars:
                mask |= self.vocab.closing
                mask[self.vocab.stop_ids] = True  # the model wanting to stop closes the string
            mask = self._ban_repeats(mask, history)
            token = self._sample_masked(mask)
            if token in self.vocab.stop_ids:
                self.force('"')
                return text
            piece = self.vocab.texts[token]
            if '"' in piece:
                piece = piece[: piece.index('"')]
                self.force(piece + '"')
                return text + piece
            self._step(token)
            history.append(token)
            text += piece

    def free_text(self, max_new_tokens: int) -> str:
        """Unconstrained text until an end-of-turn token (not appended) or the token limit."""
        self._flush()
        ids: list[int] = []
        allowed = self.vocab.text
        for _ in range(max_new_tokens):
            token = self._sample_masked(
                self._ban_repeats(allowed, ids) if self.settings.temperature <= 0 else allowed
            )
            if token in self.vocab.stop_ids:
                break
            self._step(token)
            ids.append(token)
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # -- JSON values ----------------------------------------------------------------------------------------
    def _hint(self, path: tuple[str | int, ...], root: Any) -> list[Any] | None:
        for pattern, hint in self.choices.items():
            if _match(pattern, path):
                values = hint(ChoiceContext(self.prompt_text, root, path)) if callable(hint) else hint
                if values is not None:
                    return list(values)
        return None

    def value(self, schema: dict[str, Any], defs: dict[str, Any], path: tuple = (), root: Any = None) -> Any:
        """Write one JSON value valid for `schema` and return it (also attached to `root` at `path`)."""
        result = self._value(schema, defs, path, root)
        if root is not None and path:
            self._attach(root, path, result)
        return result

    def _value(self, schema: dict[str, Any], defs: dict[str, Any], path: tuple, root: Any) -> Any:
        schema = _resolve(schema, defs)
        hint = self._hint(path, root)
        if hint:
            return hint[self.choose([format_json(v) for v in hint])]
        if "const" in schema:
            self.force(format_json(schema["const"]))
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][self.choose([format_json(v) for v in schema["enum"]])]
        branches = schema.get("anyOf") or schema.get("oneOf")
        kind = schema.get("type")
        if isinstance(kind, list):
            branches = [{**schema, "type": k} for k in kind]
        if branches:
            return self._branch([_resolve(b, defs) for b in branches], defs, path, root)
        if kind == "object" or "properties" in schema:
            return self._object(schema, defs, path, root)
        if kind == "array":
            return self._array(schema, defs, path, root)
        if kind == "string":
            self.force('"')
            required = 0 if "default" in schema else 1
            maximum = min(
                schema.get("maxLength", self.settings.max_string_chars), self.settings.max_string_chars
            )
            return self.free_string(min_chars=max(schema.get("minLength", 0), required), max_chars=maximum)
        if kind in ("number", "integer"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return [True, False][self.choose(["true", "false"])]
        if kind == "null":
            self.force("null")
            return None
        if not schema:  # any value: a string is always valid
            self.force('"')
            return self.free_string()
        raise UnsupportedSchema(f"cannot decode schema {schema}")

    def _opener(self, schema: dict[str, Any], defs: dict[str, Any]) -> str:
        """The text a value of `schema` starts with, enough to tell ``anyOf`` branches apart.

        Objects whose first property is a constant (a discriminator such as ``"type"``) open with it; values
        without a fixed opening (numbers, booleans) are represented by a typical first character.
        """
        if "const" in schema:
            return format_json(schema["const"])
        if "enum" in schema and len(schema["enum"]) == 1:
            return format_json(schema["enum"][0])
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            props = schema.get("properties", {})
            if props:
                key, sub = next(iter(props.items()))
                sub = _resolve(sub, defs)
                if "const" in sub or len(sub.get("enum", [])) == 1:
                    const = sub["const"] if "const" in sub else sub["enum"][0]
                    return "{" + format_json(key) + ": " + format_json(const)
            return "{"
        return {"array": "[", "string": '"', "null": "null", "boolean": "true"}.get(kind, "0")

    def _branch(self, branches: list[dict], defs: dict, path: tuple, root: Any) -> Any:
        """Choose an ``anyOf``/``oneOf`` branch by the likelihood of its opening text, then write its value."""
        options: list[str] = []
        keep: list[dict] = []
        for branch in branches:
            opener = self._opener(branch, defs)
            if opener not in options:
                options.append(opener)
                keep.append(branch)
        return self.value(keep[self.decide(options)], defs, path, root)

    def _object(self, schema: dict, defs: dict, path: tuple, root: Any) -> dict:
        """Required properties in schema order; optional ones all (`DecodeSettings.include_optional`, the default
        for structured outputs and tool calls) or those the model picks: after each value it chooses between
        going on and ending the object, then which key."""
        obj: dict[str, Any] = {}
        if root is None:
            root = obj
        else:
            self._attach(root, path, obj)
        required = set(schema.get("required", []))
        props = schema.get("properties", {})
        chosen = [k for k in props if k in required or self.settings.include_optional]
        self.force("{")
        for key in chosen:
            self.force((", " if obj else "") + format_json(key) + ": ")
            obj[key] = None
            self.value(props[key], defs, (*path, key), root)
        remaining = [k for k in props if k not in chosen]
        while remaining:  # one more optional key, or the end? then which key?
            if self.decide(["," if obj else '"', "}"]) == 1:
                break
            prefix = ", " if obj else ""
            key = remaining.pop(self.decide([prefix + format_json(k) for k in remaining]))
            self.force(prefix + format_json(key) + ": ")
            obj[key] = None
            self.value(props[key], defs, (*path, key), root)
        self.force("}")
        return obj

    def _attach(self, root: Any, path: tuple, value: Any) -> None:
        node = root
        for key in path[:-1]:
            node = node[key]
        if isinstance(node, list) and path[-1] == len(node):
            node.append(value)
        else:
            node[path[-1]] = value

    def _array(self, schema: dict, defs: dict, path: tuple, root: Any) -> list:
        items: list[Any] = []
        if root is None:
            root = items
        else:
            self._attach(root, path, items)
        item_schema = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", self.settings.max_array_items), self.settings.max_array_items)
        for pattern, bounds in self.lengths.items():
            if _match(pattern, path):
                lo, hi = bounds(ChoiceContext(self.prompt_text, root, path)) if callable(bounds) else bounds
                low = max(low, lo)
                if hi is not None:
                    high = min(hi, schema.get("maxItems", hi))
        high = max(high, low)
        self.force("[")
        while len(items) < high:
            item_path = (*path, len(items))
            hint = self._hint(item_path, root)
            if hint is not None:
                hint = [v for v in hint if v not in items]  # hinted items are distinct
                if not hint:
                    break
            if len(items) >= low:
                opener = '"' if hint else self._opener(_resolve(item_schema, defs), defs)[:1]
                if self.decide([(", " if items else "") + opener, "]"]) == 1:
                    break
            self.force(", " if items else "")
            if hint is not None:
                items.append(hint[self.choose([format_json(v) for v in hint])])
            else:
                self.value(item_schema, defs, item_path, root)
        self.force("]")
        return items

    def _number(self, schema: dict[str, Any], integer: bool) -> float | int:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is not None and high is not None:
            grid = _grid(low, high, integer)
            default = schema.get("default")
            if isinstance(default, int | float) and not isinstance(default, bool) and default not in grid:
                grid = sorted([*grid, int(default) if integer else default])  # the tool's usual value
            grid = [v for v in grid if _in_bounds(v, schema)]
            if grid:
                return grid[self.choose([format_json(v) for v in grid])]
        return self._digits(schema, integer)

    def _digits(self, schema: dict[str, Any], integer: bool) -> float | int:
        self._flush()
        text = ""
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        while len(text) < self.settings.max_number_chars:
            mask = self.vocab.numeric.clone()
            allowed = []
            for i in mask.nonzero().flatten().tolist():
                candidate = text + self.vocab.texts[i]
                if _number_prefix(candidate, integer, allow_negative=low is None or low < 0):
                    allowed.append(i)
            mask[:] = False
            mask[allowed] = True
            if text and _number_complete(text):
                mask[self.vocab.stop_ids] = True  # stopping ends the number
            if not mask.any():
                break
            token = self._sample_masked(mask)
            if token in self.vocab.stop_ids:
                break
            candidate = text + self.vocab.texts[token]
            if len(candidate) > self.settings.max_number_chars:
                break
            self._step(token)
            text = candidate
            if not _number_complete(text):
                continue
            # after a complete number, let the model stop: compare ending the value with going on
            end = self.logprobs[[*self.vocab.stop_ids, *self._encode(",")[:1], *self._encode("}")[:1]]].max()
            more = self.logprobs[self.vocab.numeric].max()
            if end > more and self.settings.temperature <= 0:
                break
        if not _number_complete(text):  # "-", "1." ... : finish it
            suffix = "0" if text.endswith((".", "-")) or not text else ""
            self.force(suffix)
            text += suffix
        return int(text) if integer else float(text)

    # -- whole answers --------------------------------------------------------------------------------------
    def finish(self) -> list[int]:
        self._flush()
        return self.generated


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _grid(low: float, high: float, integer: bool) -> list[float | int]:
    span = high - low
    if integer:
        if span > 50:
            return []
        return list(range(math.ceil(low), math.floor(high) + 1))
    if span <= 0:
        return [low]
    step = 10 ** math.floor(math.log10(span / 10)) if span > 0 else 1
    if span / step > 25:
        step *= 5
    count = round(span / step)
    values = [round(low + i * step, 6) for i in range(count + 1)]
    return [int(v) if float(v).is_integer() and step >= 1 else v for v in values]


def _in_bounds(value: float, schema: dict[str, Any]) -> bool:
    return (
        ("minimum" not in schema or value >= schema["minimum"])
        and ("maximum" not in schema or value <= schema["maximum"])
        and ("exclusiveMinimum" not in schema or value > schema["exclusiveMinimum"])
        and ("exclusiveMaximum" not in schema or value < schema["exclusiveMaximum"])
    )


def _number_prefix(text: str, integer: bool, allow_negative: bool) -> bool:
    """Whether `text` can start a JSON number (no leading zeros, a digit before any point)."""
    sign = "-?" if allow_negative else ""
    body = r"(0|[1-9]\d*)?" if integer else r"((0|[1-9]\d*)(\.\d*)?)?"
    return bool(re.fullmatch(sign + body, text))


def _number_complete(text: str) -> bool:
    return bool(re.fullmatch(r"-?\d+(\.\d+)?", text))


# ---------------------------------------------------------------------------------------------------------------
# The chat model
# ---------------------------------------------------------------------------------------------------------------


@contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with `num_threads` torch threads (see `LocalChatModel.num_threads`), then restore them."""
    import torch

    if num_threads is None:
        busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > (os.cpu_count() or 1)
        num_threads = 1 if busy else None
    previous = torch.get_num_threads()
    if num_threads is None or num_threads == previous:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def is_local_model(model: Any) -> bool:
    return isinstance(model, LocalChatModel)


class LocalChatModel(BaseChatModel):
    """A transformers causal LM served as a chat model, with tool calling and schema-constrained outputs.

    Greedy by default; ``temperature > 0`` samples (``seed`` makes it reproducible). Both can also be given per
    call (``model.invoke(messages, temperature=0.8, seed=3)`` or ``model.bind(temperature=0.8)``).
    With tools bound (`bind_tools`), every answer is one constrained tool call unless ``tool_choice="none"``
    (a 135M model never decides to call a tool by itself); with ``force_tool_calls=False`` and
    ``tool_choice="auto"`` the model answers freely and tool calls are parsed from its text.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any = Field(exclude=True, description="A transformers causal LM (eval mode).")
    tokenizer: Any = Field(exclude=True, description="Its tokenizer, with the qwen2_5 template set.")
    model_name: str = "local"
    temperature: float = 0.0
    seed: int | None = None
    max_new_tokens: int = 512
    max_string_chars: int = 120
    max_array_items: int = 5
    max_retries: int = 2
    force_tool_calls: bool = True
    fill_optional_args: bool = Field(
        default=True,
        description="Constrained tool calls write every argument of the tool's schema, optional ones included, "
        "each value chosen by the model; False leaves optional arguments to the model, which then (a 135M model) "
        "omits them all and every default applies (a white background, no colour...). Also a per-call kwarg.",
    )
    num_threads: int | None = Field(
        default=None,
        description="torch CPU threads while generating; None: 1 when the machine is oversubscribed (1-minute load "
        "average above the CPU count: OpenMP threads then wait on each other, measured 8x slower with 2 threads "
        "than with 1 on a loaded 2-core machine), else torch's default.",
    )
    choices: dict[str, Any] = Field(default_factory=dict, description="Extra choice hints (see Choices).")
    profile: dict[str, Any] | None = Field(
        default_factory=lambda: {
            "text_inputs": True,
            "image_inputs": False,
            "tool_calling": True,
            "tool_choice": True,
            "structured_output": True,
            "open_weights": True,
        }
    )

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _vocab: _Vocab | None = PrivateAttr(default=None)
    _prefix: tuple[list[int], Any] | None = PrivateAttr(default=None)

    @classmethod
    def from_pretrained(cls, path: str | Path, **kwargs: Any) -> LocalChatModel:
        """Load a causal LM and tokenizer from a folder (or an id already in the HF cache), on CPU, float32."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        # Local files only: an id that is not in the cache fails at once instead of retrying the hub for minutes.
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(str(path), local_files_only=True))
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True).eval()
        kwargs.setdefault("model_name", Path(str(path)).name)
        return cls(model=model, tokenizer=tokenizer, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "pixplan-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature, "seed": self.seed}

    def _get_vocab(self) -> _Vocab:
        if self._vocab is None:
            size = self.model.get_output_embeddings().weight.shape[0]
            self._vocab = _Vocab(self.tokenizer, size)
        return self._vocab

    def _settings(self, kwargs: dict[str, Any]) -> tuple[DecodeSettings, Any]:
        import torch

        temperature = kwargs.get("temperature", self.temperature)
        seed = kwargs.get("seed", self.seed)
        generator = torch.Generator()
        generator.manual_seed(seed if seed is not None else int(time.time_ns() % 2**31))
        settings = DecodeSettings(
            temperature=temperature or 0.0,
            max_string_chars=kwargs.get("max_string_chars", self.max_string_chars),
            max_array_items=kwargs.get("max_array_items", self.max_array_items),
        )
        return settings, generator

    def _decoder(
        self, prompt: str, kwargs: dict[str, Any], choices: dict[str, Choices]
    ) -> ConstrainedDecoder:
        """A decoder on this prompt (reusing the KV cache of the previous prompt where they share a prefix)."""
        settings, generator = self._settings(kwargs)
        return ConstrainedDecoder(
            model=self.model,
            tokenizer=self.tokenizer,
            vocab=self._get_vocab(),
            prompt_ids=self.tokenizer.encode(prompt, add_special_tokens=False),
            prompt_text=prompt,
            settings=settings,
            generator=generator,
            choices={**self.choices, **choices},
            lengths=kwargs.get("lengths") or {},
            prefix=self._take_prefix(),
        )

    def _take_prefix(self) -> tuple[list[int], Any] | None:
        prefix, self._prefix = self._prefix, None
        return prefix

    # -- generation -----------------------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = kwargs.get("tools") or []
        schema = kwargs.get("json_schema")
        tool_choice = kwargs.get("tool_choice")
        chat = to_chat_messages(messages)
        if schema is not None:
            chat = _with_format_instruction(chat, schema)
        prompt = render_prompt(self.tokenizer, chat, tools if tools and tool_choice != "none" else None)
        with self._lock, _torch_threads(self.num_threads):
            decoder = self._decoder(prompt, kwargs, kwargs.get("choices") or {})
            try:
                message = self._respond(decoder, tools, tool_choice, schema, kwargs)
            finally:
                self._prefix = decoder.release()
        generated = len(decoder.generated)
        message.usage_metadata = {
            "input_tokens": len(decoder.prompt_ids),
            "output_tokens": generated,
            "total_tokens": len(decoder.prompt_ids) + generated,
        }
        message.response_metadata = {"model_name": self.model_name, "finish_reason": "stop"}
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _respond(
        self,
        decoder: ConstrainedDecoder,
        tools: list[dict],
        tool_choice: Any,
        schema: dict | None,
        kwargs: dict,
    ) -> AIMessage:
        if schema is not None:
            try:
                check_schema(schema)
            except UnsupportedSchema:
                return self._free_answer(decoder, kwargs)
            decoder.value(schema, schema.get("$defs", {}))
            decoder.force("<|im_end|>")
            return AIMessage(content=self.tokenizer.decode(decoder.finish(), skip_special_tokens=True))
        if tools and tool_choice != "none":
            names = _allowed_tools(tools, tool_choice)
            forced = tool_choice not in (None, "auto") or self.force_tool_calls
            if forced and all(_decodable(t) for t in tools if t["function"]["name"] in names):
                fill = kwargs.get("fill_optional_args", self.fill_optional_args)
                return self._constrained_call(decoder, tools, names, fill_optional=fill)
        return self._free_answer(decoder, kwargs, tools)

    def _constrained_call(
        self, decoder: ConstrainedDecoder, tools: list[dict], names: list[str], fill_optional: bool = True
    ) -> AIMessage:
        """One tool call: the tool chosen by likelihood, then its arguments in schema order. With
        `fill_optional` every argument is written (a small model left to choose ends the object at once, and
        every default then applies); otherwise optional ones are the model's choice."""
        by_name = {t["function"]["name"]: t["function"] for t in tools}
        decoder.mentions = request_words(decoder.prompt_text)
        decoder.aliases = region_aliases(decoder.prompt_text)
        decoder.force('<tool_call>\n{"name": ')
        name = names[decoder.choose([format_json(n) for n in names])]
        decoder.force(', "arguments": ')
        parameters = by_name[name].get("parameters") or {"type": "object", "properties": {}}
        saved = decoder.settings.include_optional
        decoder.settings.include_optional = fill_optional
        decoder.choices = {**TOOL_CHOICES, **argument_choices(parameters), **decoder.choices}
        try:
            decoder.value(parameters, parameters.get("$defs", {}))
        finally:
            decoder.settings.include_optional = saved
        decoder.force("}\n</tool_call><|im_end|>")
        ids = decoder.finish()
        return _message_from_parsed(parse_completion(self.tokenizer, ids, decoder.prompt_ids, tools))

    def _free_answer(
        self, decoder: ConstrainedDecoder, kwargs: dict, tools: list[dict] | None = None
    ) -> AIMessage:
        text = decoder.free_text(kwargs.get("max_new_tokens", self.max_new_tokens))
        decoder.force("<|im_end|>")
        ids = decoder.finish()
        parsed = parse_completion(self.tokenizer, ids, decoder.prompt_ids, tools)
        if not parsed.get("content") and not parsed.get("tool_calls"):
            parsed["content"] = text
        return _message_from_parsed(parsed)

    # -- LangChain interfaces -------------------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | dict | bool | None = None,
        choices: dict[str, Choices] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI tool dicts).

        ``tool_choice``: None/"auto" (a call, see the class doc), "any"/"required"/True (a call), "none" (text),
        a tool name or ``{"type": "function", "function": {"name": ...}}`` (that tool). ``choices`` adds hints
        for argument paths (``{"color": ["green", "white"]}``) to the defaults (`TOOL_CHOICES`).
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is True:
            tool_choice = "any"
        return self.bind(tools=formatted, tool_choice=tool_choice, choices=dict(choices or {}), **kwargs)

    def with_structured_output(
        self,
        schema: dict | type,
        *,
        include_raw: bool = False,
        choices: dict[str, Choices] | None = None,
        lengths: dict[str, Lengths] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable that answers with an instance of `schema` (a pydantic model, or a JSON schema dict).

        The JSON is constrained to the schema, so it always parses; what pydantic still rejects (custom
        validators, or schemas the decoder falls back on) is re-asked with the error, `max_retries` times.
        ``include_raw=True`` returns ``{"raw", "parsed", "parsing_error"}``. ``choices`` and ``lengths``
        (paths such as ``"steps.*.serves"``) add to the hints pixplan's own schemas get (`default_choices`,
        `default_lengths`).
        """
        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
        json_schema = schema.model_json_schema() if is_model else dict(schema)
        hints = {**(default_choices(schema) if is_model else {}), **(choices or {})}
        bounds = {**(default_lengths(schema) if is_model else {}), **(lengths or {})}
        bound = self.bind(
            json_schema=json_schema,
            choices=hints,
            lengths=bounds,
            ls_structured_output_format={"schema": json_schema},
        )

        def parse(message: AIMessage) -> Any:
            data = json.loads(message.content) if isinstance(message.content, str) else message.content
            return schema.model_validate(data) if is_model else data

        def run(messages: LanguageModelInput, config: Any = None, **call_kwargs: Any) -> Any:
            history = list(self._convert_input(messages).to_messages())
            raw, error = None, None
            for _ in range(self.max_retries + 1):
                raw = bound.invoke(history, config, **call_kwargs)
                try:
                    parsed = parse(raw)
                except (ValueError, ValidationError) as exc:
                    error = exc
                    history += [
                        raw,
                        HumanMessage(f"That answer was invalid: {exc}. Answer again with valid JSON."),
                    ]
                    continue
                return {"raw": raw, "parsed": parsed, "parsing_error": None} if include_raw else parsed
            if include_raw:
                return {"raw": raw, "parsed": None, "parsing_error": error}
            raise OutputParserException(f"no valid {json_schema.get('title', 'output')}: {error}")

        return RunnableLambda(run, name=f"{self.model_name}.structured")


def _with_format_instruction(chat: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Tell the model what JSON to write (briefly: the decoder enforces the structure)."""
    lines = [
        f"Answer with one JSON object: {schema.get('title', 'the answer')}. {schema.get('description', '')}"
    ]
    for key, sub in schema.get("properties", {}).items():
        if "description" in sub:
            lines.append(f"- {key}: {sub['description']}")
    note = "\n".join(lines).strip()
    if chat and chat[0]["role"] == "system":
        return [{"role": "system", "content": chat[0]["content"] + "\n\n" + note}, *chat[1:]]
    return [{"role": "system", "content": note}, *chat]


def _allowed_tools(tools: list[dict], tool_choice: Any) -> list[str]:
    names = [t["function"]["name"] for t in tools]
    if isinstance(tool_choice, dict):
        tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
    if isinstance(tool_choice, str) and tool_choice in names:
        return [tool_choice]
    return names


def _decodable(tool: dict) -> bool:
    try:
        check_schema(tool["function"].get("parameters") or {})
    except UnsupportedSchema:
        return False
    return True


def _message_from_parsed(parsed: dict[str, Any]) -> AIMessage:
    calls = []
    for i, call in enumerate(parsed.get("tool_calls") or []):
        function = call.get("function", call)
        args = function.get("arguments") or {}
        if isinstance(args, str):
            args = json.loads(args)
        calls.append(
            {
                "name": function["name"],
                "args": args,
                "id": f"call_{i}_{time.time_ns():x}",
                "type": "tool_call",
            }
        )
    return AIMessage(content=parsed.get("content") or "", tool_calls=calls)

"""What is trained is what is served: the chat format of local models, shared with the training code.

Prompts are rendered with TRL's ``qwen2_5.jinja`` chat template (ChatML tokens, the same as SmolLM2's); tool
calls are written exactly as that template renders them::

    <tool_call>
    {"name": "recolor", "arguments": {"region": "r2", "color": "green"}}
    </tool_call><|im_end|>

and completions are parsed with TRL's own `parse_response`. The prompt lists tools in their compact form
(`compact_tool`: name and one-line description), which keeps an orchestrator prompt near
1.3k tokens; the decoder still enforces each tool's full schema. Training imports everything here, so serving and
training cannot drift apart. Nothing here imports torch.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

#: The TRL chat template every local model is served (and trained) with.
CHAT_TEMPLATE_NAME = "qwen2_5"

#: The system turn a conversation without one gets. TRL's qwen2.5 template would otherwise write "You are Qwen,
#: created by Alibaba Cloud", which no local model pixplan serves is.
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


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
    """LangChain messages as chat-template dicts (roles system/user/assistant/tool, OpenAI-style tool calls).

    A conversation that does not start with a system message gets `DEFAULT_SYSTEM_PROMPT`.
    """
    chat: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            chat.append({"role": "system", "content": _text_of(message.content)})
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
        elif isinstance(message, HumanMessage) or message.type in ("human", "user", "chat"):
            chat.append({"role": "user", "content": _text_of(message.content)})
        else:
            raise ValueError(f"local models take system, human, ai and tool messages, not {message.type!r}")
    if not chat or chat[0]["role"] != "system":
        chat.insert(0, {"role": "system", "content": DEFAULT_SYSTEM_PROMPT})
    return chat


def compact_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool as the prompt lists it: its name and the first line of its description. The model chooses the
    tool among these one-liners; the decoder then writes the chosen tool's arguments under its full schema
    (every key, enum and bound enforced), so the prompt carries no schema: ~100 tokens a tool, not ~400."""
    function = tool["function"]
    description = (function.get("description") or "").strip().split("\n")[0]
    return {"type": "function", "function": {"name": function["name"], "description": description}}


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]], tools: list[dict] | None = None) -> str:
    """The prompt text: the chat template applied, tools in their compact form (`compact_tool`), with the
    generation prompt (``<|im_start|>assistant\\n``)."""
    listed = [compact_tool(tool) for tool in tools] if tools else None
    return tokenizer.apply_chat_template(messages, tools=listed, tokenize=False, add_generation_prompt=True)


def with_format_instruction(chat: list[dict[str, Any]], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation of a structured answer: the system turn tells the model what JSON to write (briefly:
    the decoder enforces the structure). Structured prompts (the planner's) are rendered through this."""
    lines = [
        f"Answer with one JSON object: {schema.get('title', 'the answer')}. {schema.get('description', '')}"
    ]
    for key, sub in schema.get("properties", {}).items():
        if "description" in sub:
            lines.append(f"- {key}: {sub['description']}")
    note = "\n".join(lines).strip()
    return [{"role": "system", "content": chat[0]["content"] + "\n\n" + note}, *chat[1:]]


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

"""`LocalChatModel`: a transformers causal LM as a LangChain chat model, with tool calls and structured output.

Formats come from `chat_format` (TRL's template and parser), constrained values from `decoding`, choices and
hints from `choices`, reused prompt prefixes from `prefix_cache`. torch and transformers load with the weights.
About 510 lines: the LangChain chat-model contract (generate, stream, bind_tools, with_structured_output) in one
class.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from pixplan.graph.local.chat_format import (
    format_json,
    parse_completion,
    prepare_tokenizer,
    render_prompt,
    to_chat_messages,
    with_format_instruction,
)
from pixplan.graph.local.choices import (
    Choices,
    Lengths,
    allows_null,
    colour_arguments,
    colour_options,
    hint_words,
    region_mentions,
    unquoted,
)
from pixplan.graph.local.decoding import ConstrainedDecoder, DecodeSettings, Vocab
from pixplan.graph.local.json_schema import decodable
from pixplan.graph.local.prefix_cache import PrefixCache


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

    Greedy by default; ``temperature > 0`` samples (``seed`` makes it reproducible). Sampling, ``max_tokens``,
    ``stop``, ``timeout`` and ``hints`` can also be given per call (``model.invoke(messages, temperature=0.8)``).
    With tools bound (`bind_tools`), every answer is one constrained tool call unless ``tool_choice="none"``
    (a 135M model never decides to call a tool by itself); with ``force_tool_calls=False`` and
    ``tool_choice="auto"`` the model answers freely and tool calls are parsed from its text.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any = Field(exclude=True, description="A transformers causal LM (eval mode).")
    tokenizer: Any = Field(exclude=True, description="Its tokenizer, with the qwen2_5 template set.")
    model_name: str = "local"
    adapter: str | None = Field(
        default=None,
        description="The peft LoRA adapter (by the name `load_adapter` gave it) switched on for this model's "
        "calls; None: the base weights alone, every adapter off. Variants of one base share its weights.",
    )
    switch_adapters: bool = Field(
        default=True,
        description="False: decode with the model's LoRA layers as they are, switching none (a policy being "
        "trained: switching would decode the base model and freeze the LoRA weights the trainer updates).",
    )
    temperature: float = 0.0
    seed: int | None = None
    max_tokens: int = Field(default=512, description="Most tokens of a free-text answer.")
    stop: list[str] | None = Field(default=None, description="Free text ends before any of these strings.")
    timeout: float | None = Field(default=None, description="Seconds a call may take; then TimeoutError.")
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
    hints: bool = Field(
        default=True,
        description="Among allowed options, prefer those the request's words name (`hint_text`: a colour, an "
        "enum value, a region's label); False: the model's likelihood alone chooses. Also a per-call kwarg.",
    )
    prefix_cache_size: int = Field(
        default=4, description="KV states of earlier prompts kept for prompts that start alike; 0: off."
    )
    num_threads: int | None = Field(
        default=None,
        description="torch CPU threads while generating; None: 1 when the machine is oversubscribed (1-minute load "
        "average above the CPU count: OpenMP threads then wait on each other, measured 8x slower with 2 threads "
        "than with 1 on a loaded 2-core machine), else torch's default.",
    )
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
    _vocab: Vocab | None = PrivateAttr(default=None)
    _prefixes: PrefixCache | None = PrivateAttr(default=None)
    _grammars: Any = PrivateAttr(default=None)

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
        return {
            "model_name": self.model_name,
            "adapter": self.adapter,
            "temperature": self.temperature,
            "seed": self.seed,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="pixplan-local",
            ls_model_name=kwargs["model"] if isinstance(kwargs.get("model"), str) else self.model_name,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    def settings(self) -> dict[str, Any]:
        """The decoding settings a figure depends on (for traces and eval summaries)."""
        return {
            "model_name": self.model_name,
            "adapter": self.adapter,
            "hints": self.hints,
            "temperature": self.temperature,
            "fill_optional_args": self.fill_optional_args,
            "prefix_cache_size": self.prefix_cache_size,
        }

    def load_adapter(self, path: str | Path, name: str) -> str:
        """Load the peft LoRA adapter in `path` into the shared weights as `name` (once); returns the name.

        The weights hold every adapter loaded this way; a model's `adapter` field says which one its calls use
        (`model_copy(update={"adapter": name})` gives a variant on the same weights).
        """
        with self._lock:
            if name not in (getattr(self.model, "peft_config", None) or {}):
                import warnings

                from transformers.utils import logging as hf_logging

                # transformers reports the other adapters' LoRA keys as "MISSING ... newly initialized" when a
                # second adapter loads (they are not in its file; their weights are left as they are, tested in
                # test_adapters.py), and peft warns of several adapters on one model: both by design here.
                verbosity = hf_logging.get_verbosity()
                hf_logging.set_verbosity_error()
                try:
                    with warnings.catch_warnings():
                        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                        self.model.load_adapter(str(path), adapter_name=name)
                finally:
                    hf_logging.set_verbosity(verbosity)
                self.model.eval()  # the new LoRA layers would otherwise apply their dropout when serving
        return name

    def _switch_adapter(self) -> None:
        """Put this model's adapter on (and the others off) before it decodes; called under the shared lock.

        peft's own layer switches, on every LoRA layer (transformers' `set_adapter` wants a newer peft)."""
        if not self.switch_adapters:
            return
        loaded = getattr(self.model, "peft_config", None) or {}
        if self.adapter is not None and self.adapter not in loaded:
            raise ValueError(f"adapter {self.adapter!r} is not loaded into {self.model_name}")
        if not loaded:
            return
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module in self.model.modules():
            if isinstance(module, BaseTunerLayer):
                module.enable_adapters(self.adapter is not None)
                if self.adapter is not None:
                    module.set_adapter(self.adapter, inference_mode=True)

    def _get_vocab(self) -> Vocab:
        if self._vocab is None:
            self._vocab = Vocab(self.tokenizer, self.model.get_output_embeddings().weight.shape[0])
        return self._vocab

    def _get_grammars(self) -> Any:
        if self._grammars is None:
            from pixplan.graph.local.grammar import Grammars

            vocab = self._get_vocab()
            self._grammars = Grammars(self.tokenizer, len(vocab.texts), vocab.stop_ids)
        return self._grammars

    def _prefix_cache(self) -> PrefixCache:
        if self._prefixes is None:
            self._prefixes = PrefixCache(self.prefix_cache_size)
        return self._prefixes

    def _decoder(
        self, prompt: str, kwargs: dict[str, Any], choices: dict[str, Choices]
    ) -> ConstrainedDecoder:
        """A decoder on this prompt, starting from the cached KV state of its longest known prefix."""
        import torch

        seed = kwargs.get("seed", self.seed)
        generator = torch.Generator()
        generator.manual_seed(seed if seed is not None else int(time.time_ns() % 2**31))
        timeout = kwargs.get("timeout", self.timeout)
        settings = DecodeSettings(
            temperature=kwargs.get("temperature", self.temperature) or 0.0,
            max_string_chars=kwargs.get("max_string_chars", self.max_string_chars),
            max_array_items=kwargs.get("max_array_items", self.max_array_items),
            deadline=None if timeout is None else time.monotonic() + timeout,
        )
        ids = self.tokenizer.encode(prompt, add_special_tokens=False)
        reused, cache = self._prefix_cache().take(ids) if self.prefix_cache_size > 0 else (0, None)
        return ConstrainedDecoder(
            model=self.model,
            tokenizer=self.tokenizer,
            vocab=self._get_vocab(),
            grammars=self._get_grammars(),
            prompt_ids=ids,
            settings=settings,
            generator=generator,
            choices=dict(choices),
            lengths=kwargs.get("lengths") or {},
            cache=cache,
            reused=reused,
        )

    def _keep(self, decoder: ConstrainedDecoder) -> None:
        if self.prefix_cache_size > 0 and decoder.cache is not None:
            self._prefix_cache().put(decoder.prompt_ids, decoder.release())

    # -- generation -----------------------------------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = AIMessage("")
        for piece in self._run(messages, stop, kwargs):
            if isinstance(piece, AIMessage):
                message = piece
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Free text token by token; a tool call or structured answer as one chunk. Usage on the last chunk."""
        streamed = False
        for piece in self._run(messages, stop, kwargs):
            if isinstance(piece, str):
                streamed = True
                if run_manager:
                    run_manager.on_llm_new_token(piece)
                yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
                continue
            chunk = AIMessageChunk(
                content="" if streamed else piece.content,
                tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                    for i, c in enumerate(piece.tool_calls)
                ],
                usage_metadata=piece.usage_metadata,
                response_metadata=piece.response_metadata,
                chunk_position="last",
            )
            yield ChatGenerationChunk(message=chunk)

    def _run(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> Iterator[Any]:
        """Text pieces as they are decoded (free text only), then the whole `AIMessage` with its usage."""
        tools = kwargs.get("tools") or []
        schema = kwargs.get("json_schema")
        tool_choice = kwargs.get("tool_choice")
        chat = to_chat_messages(messages)
        if schema is not None:
            chat = with_format_instruction(chat, schema)
        listed = tools if tools and tool_choice != "none" else None
        prompt = render_prompt(self.tokenizer, chat, listed)
        started = time.perf_counter()
        with self._lock, _torch_threads(self.num_threads):
            self._switch_adapter()
            decoder = self._decoder(prompt, kwargs, kwargs.get("choices") or {})
            try:
                message = None
                if schema is not None and decodable(schema):
                    self._hint(decoder, kwargs)
                    decoder.value(schema, schema.get("$defs", {}))
                    decoder.force("<|im_end|>")
                    message = AIMessage(self.tokenizer.decode(decoder.finish(), skip_special_tokens=True))
                elif schema is None and tools and tool_choice != "none":
                    names = _allowed_tools(tools, tool_choice)
                    forced = tool_choice not in (None, "auto") or self.force_tool_calls
                    by_name = {t["function"]["name"]: t for t in tools}
                    if forced and all(
                        decodable(by_name[n]["function"].get("parameters") or {}) for n in names
                    ):
                        decoder, message = self._tool_call(decoder, prompt, tools, names, kwargs)
                if message is None:
                    text = ""
                    limit = kwargs.get("max_tokens", kwargs.get("max_new_tokens", self.max_tokens))
                    for piece in decoder.iter_free_text(limit, stop or kwargs.get("stop") or self.stop or ()):
                        text += piece
                        yield piece
                    decoder.force("<|im_end|>")
                    parsed = parse_completion(self.tokenizer, decoder.finish(), decoder.prompt_ids, tools)
                    if not parsed.get("tool_calls"):
                        parsed = {"content": text}
                    message = _message_from_parsed(parsed)
            finally:
                self._keep(decoder)
        generated = len(decoder.generated)
        message.usage_metadata = {
            "input_tokens": len(decoder.prompt_ids),
            "output_tokens": generated,
            "total_tokens": len(decoder.prompt_ids) + generated,
            "input_token_details": {"cache_read": decoder.reused},
        }
        message.response_metadata = {
            "model_name": self.model_name,
            "finish_reason": "stop",
            "seconds": round(time.perf_counter() - started, 4),
        }
        yield message

    def _hint(self, decoder: ConstrainedDecoder, kwargs: dict) -> None:
        """Steer the decoder's choices by the request's words (`hints`): ``hint_text``, and ``labels`` (what
        each option is called, by option value)."""
        hint_text = kwargs.get("hint_text") or ""
        if kwargs.get("hints", self.hints) and hint_text:
            decoder.mentions = hint_words(hint_text)
            decoder.labels = {format_json(k): v for k, v in (kwargs.get("labels") or {}).items()}

    def _tool_call(
        self, decoder: ConstrainedDecoder, prompt: str, tools: list[dict], names: list[str], kwargs: dict
    ) -> tuple[ConstrainedDecoder, AIMessage]:
        """One tool call, decoded again with the rejected (tool, region) pairs banned if it repeats a call of
        ``exclude`` (so a retry is a real second attempt)."""
        exclude = list(kwargs.get("exclude") or ())
        message = self._decode_call(decoder, tools, names, kwargs, banned={})
        call = message.tool_calls[0]
        if not any(_same_call(call, other) for other in exclude):
            return decoder, message
        banned: dict[str, set[str]] = {}
        for other in exclude:
            banned.setdefault(other["name"], set()).add(format_json(other.get("args", {}).get("region")))
        self._keep(decoder)
        decoder = self._decoder(prompt, kwargs, kwargs.get("choices") or {})
        return decoder, self._decode_call(decoder, tools, names, kwargs, banned=banned)

    def _decode_call(
        self,
        decoder: ConstrainedDecoder,
        tools: list[dict],
        names: list[str],
        kwargs: dict,
        banned: dict[str, set[str]],
    ) -> AIMessage:
        """The tool chosen by likelihood among `names`, then its arguments in schema order. With
        `fill_optional_args` every argument is written (a small model left to choose ends the object at once,
        and every default then applies); otherwise optional ones are the model's choice."""
        by_name = {t["function"]["name"]: t["function"] for t in tools}
        given = dict(kwargs.get("choices") or {})
        regions = list(given.get("region") or [])
        hint_text = kwargs.get("hint_text") or ""
        self._hint(decoder, kwargs)

        def open_regions(name: str) -> list[str]:
            return [r for r in regions if format_json(r) not in banned.get(name, set())]

        if banned:
            names = [n for n in names if n not in banned or (regions and open_regions(n))] or names
        decoder.force('<tool_call>\n{"name": ')
        name = names[decoder.choose([format_json(n) for n in names])]
        decoder.force(', "arguments": ')
        parameters = by_name[name].get("parameters") or {"type": "object", "properties": {}}
        properties = parameters.get("properties", {})
        colour_keys = colour_arguments(parameters)
        decoder.choices = {
            **{key: colour_options(hint_text, allows_null(properties[key])) for key in colour_keys},
            **given,
        }
        if decoder.mentions:  # a colour is hinted by the words outside quotes (the text to write is quoted),
            # a region by the words that name what the call edits (`region_mentions`: no landmark, no new thing)
            decoder.path_mentions = {
                **dict.fromkeys(colour_keys, hint_words(unquoted(hint_text))),
                "region": region_mentions(hint_text, name),
            }
        if banned.get(name) and regions:
            decoder.choices["region"] = open_regions(name) or regions
        decoder.settings.include_optional = kwargs.get("fill_optional_args", self.fill_optional_args)
        decoder.value(parameters, parameters.get("$defs", {}))
        decoder.force("}\n</tool_call><|im_end|>")
        ids = decoder.finish()
        return _message_from_parsed(parse_completion(self.tokenizer, ids, decoder.prompt_ids, tools))

    # -- LangChain interfaces -------------------------------------------------------------------------------
    def bind_tools(
        self,
        tools: Sequence[Any],
        *,
        tool_choice: str | dict | bool | None = None,
        choices: dict[str, Choices] | None = None,
        hint_text: str | None = None,
        labels: dict[str, str] | None = None,
        exclude: Sequence[dict[str, Any]] = (),
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI tool dicts).

        ``tool_choice``: None/"auto" (a call, see the class doc), "any"/"required"/True (a call), "none" (text),
        a tool name or ``{"type": "function", "function": {"name": ...}}`` (that tool). ``choices``: allowed
        values by argument path (``{"region": ["r1", "whole"]}``). ``hint_text`` (the step) and ``labels``
        (what each option is called: ``{"r2": "text Morning Brew"}``) feed the hints (`hints`). ``exclude``:
        calls (``{"name", "args"}``) not to make again.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is True:
            tool_choice = "any"
        extra = {"hint_text": hint_text, "labels": dict(labels or {}), "exclude": list(exclude)}
        return self.bind(
            tools=formatted, tool_choice=tool_choice, choices=dict(choices or {}), **extra, **kwargs
        )

    def with_structured_output(
        self,
        schema: dict | type,
        *,
        include_raw: bool = False,
        choices: dict[str, Choices] | None = None,
        lengths: dict[str, Lengths] | None = None,
        hint_text: str | None = None,
        labels: dict[Any, str] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable that answers with an instance of `schema` (a pydantic model, a TypedDict or a JSON schema).

        The JSON is constrained to the schema, so it always parses; what pydantic still rejects (custom
        validators, or schemas the decoder falls back on) is re-asked with the error, `max_retries` times.
        ``include_raw=True`` returns ``{"raw", "parsed", "parsing_error"}``. ``choices`` and ``lengths`` constrain
        values and array lengths by path (``"steps.*.tool"``, ``"steps.*.serves"``). ``hint_text`` (the request)
        and ``labels`` (option value -> the words that name it) feed the hints (`hints`), as in `bind_tools`.
        ``method`` is accepted and ignored (there is one method: constrained decoding).
        """
        kwargs.pop("method", None)
        kwargs.pop("strict", None)
        if kwargs:
            raise ValueError(f"unknown arguments {sorted(kwargs)}")
        from pydantic.v1 import BaseModel as BaseModelV1

        is_model = isinstance(schema, type) and issubclass(schema, BaseModel)
        is_v1 = isinstance(schema, type) and issubclass(schema, BaseModelV1)
        json_schema = (
            schema.model_json_schema()
            if is_model
            else schema.schema()
            if is_v1
            else convert_to_json_schema(schema)
        )
        bound = self.bind(
            json_schema=json_schema,
            choices=dict(choices or {}),
            lengths=dict(lengths or {}),
            hint_text=hint_text,
            labels=dict(labels or {}),
            ls_structured_output_format={
                "schema": convert_to_json_schema(schema),
                "kwargs": {"method": "json_schema"},
            },
        )

        def parse(message: AIMessage) -> Any:
            data = json.loads(message.content) if isinstance(message.content, str) else message.content
            return schema.model_validate(data) if is_model else schema.parse_obj(data) if is_v1 else data

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


def _allowed_tools(tools: list[dict], tool_choice: Any) -> list[str]:
    names = [t["function"]["name"] for t in tools]
    if isinstance(tool_choice, dict):
        tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
    if isinstance(tool_choice, str) and tool_choice in names:
        return [tool_choice]
    return names


def _same_call(call: dict[str, Any], other: dict[str, Any]) -> bool:
    return call["name"] == other["name"] and json.dumps(call["args"], sort_keys=True) == json.dumps(
        other.get("args", {}), sort_keys=True
    )


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

"""Schema-constrained decoding on one KV cache: the decoder writes the JSON structure, the model chooses.

A 135M model cannot be trusted to write valid JSON, so `ConstrainedDecoder` writes the structure itself and lets
the model choose only where the schema leaves a choice:

- enum / Literal / const values, booleans, ``anyOf`` branches and the caller's choices (`choices.py`) are chosen
  by the model's log-likelihood of each whole option, all options scored in one forward pass (sampled from it
  when ``temperature > 0``); with hints, the options the request names best compete (`mention_score`);
- objects write their properties in schema order (optional ones too, by default: left to itself a small model
  ends an object at once and every default applies);
- free strings are generated token by token under an xgrammar matcher of the string (`grammar.py`; no
  backslashes or control characters inside; byte pieces of a multi-byte character join up, so CJK text
  survives) until the model closes the quote or a length cap;
- bounded numbers are chosen among a grid of the allowed range (and the schema's default), unbounded ones token
  by token under an xgrammar matcher of the number; arrays get a model-chosen length between the schema's
  bounds and a cap.

The token masks of what the model writes freely come from xgrammar; pixplan's own code is what no grammar
engine does: choosing among whole options by likelihood in one forward pass, and writing the structure itself.
Only new tokens are forwarded. torch is imported when a decoder is built, not when this module is imported.
About 530 lines: one decoder that walks a schema, kept whole so it reads top to bottom.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pixplan.graph.local.chat_format import format_json
from pixplan.graph.local.choices import ChoiceContext, Choices, Lengths, match, mention_score
from pixplan.graph.local.json_schema import (
    UnsupportedSchema,
    grid,
    in_bounds,
    opener,
    resolve,
)

_REPLACEMENT = "\ufffd"


class Vocab:
    """Per-tokenizer token classes for constrained decoding (computed once per model)."""

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
        for i, text in enumerate(texts):
            if not text or "\\" in text or any(ord(c) < 32 for c in text):
                continue
            quote = text.find('"')
            if quote == -1:
                safe[i] = True  # pieces of a multi-byte character (decoding to U+FFFD alone) included
            elif _REPLACEMENT not in text:  # '"', '",', '."}': the model closing the string
                closing[i] = True
        self.safe, self.closing = safe, closing
        self.safe_or_closing = safe | closing
        # '"', '",', '"}': tokens that close a string first thing (the grammar of a string takes only the lone
        # quote; training text writes the quote with what follows it).
        self.quote_first = closing & torch.tensor([text.startswith('"') for text in texts])
        self.stop_ids = sorted(
            {
                i
                for i in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"))
                if i is not None
            }
        )
        self.text = torch.tensor([bool(t) for t in texts])  # ordinary tokens (no special ones)
        self.text[self.stop_ids] = True
        self._starting_with: dict[int, Any] = {}

    def starting_with(self, token: int):
        """Ids of the tokens whose text starts with `token`'s text (itself included); cached per token."""
        import torch

        if token not in self._starting_with:
            piece = self.texts[token]
            ids = [i for i, text in enumerate(self.texts) if piece and text.startswith(piece)] or [token]
            self._starting_with[token] = torch.tensor(sorted({*ids, token}))
        return self._starting_with[token]


_CACHE_ARG: str | None = None


@dataclass
class DecodeSettings:
    """Limits and sampling of one generation."""

    temperature: float = 0.0
    max_string_chars: int = 120
    max_array_items: int = 5
    max_number_chars: int = 8
    no_repeat_ngram: int = 3
    include_optional: bool = True
    deadline: float | None = None  # time.monotonic() after which a forward raises TimeoutError


@dataclass
class ConstrainedDecoder:
    """Writes text after a prompt on one KV cache: forced text, choices among options, constrained values."""

    model: Any
    tokenizer: Any
    vocab: Vocab
    prompt_ids: list[int]
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    generator: Any = None
    choices: dict[str, Choices] = field(default_factory=dict)
    lengths: dict[str, Lengths] = field(default_factory=dict)
    cache: Any = None  # a KV cache holding prompt_ids[:reused] (from a PrefixCache), or None
    reused: int = 0
    grammars: Any = None  # the model's `Grammars`: token masks of the values the model writes freely
    mentions: dict[str, int] = field(default_factory=dict)  # hint words steering choices (`mention_score`)
    labels: dict[str, str] = field(default_factory=dict)  # option (JSON) -> the words it is hinted by
    #: Hint words for the choices at some argument paths instead of `mentions` (a colour is hinted by the
    #: request's words outside quotes: the quoted words are the text to write, not its colour).
    path_mentions: dict[str, dict[str, int]] = field(default_factory=dict)

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
        if self.cache is None:
            self.cache, self.reused = DynamicCache(config=self.model.config), 0
        self._forward(self.prompt_ids[self.reused :])

    def _crop_to(self, length: int) -> None:
        extra = self.cache.get_seq_length() - length
        if extra > 0:
            self.cache.crop(-extra)

    def release(self) -> Any:
        """The KV cache of the prompt alone (cropped back: the decoder is done with it), for a `PrefixCache`."""
        self._crop_to(len(self.prompt_ids))
        cache, self.cache = self.cache, None
        return cache

    # -- low level ------------------------------------------------------------------------------------------
    def _forward(self, ids: list[int], every_position: bool = False, **extra: Any):
        """Feed ids after the cache; returns log-probs after the last fed position, or after each of them."""
        import torch

        if self.settings.deadline is not None and time.monotonic() > self.settings.deadline:
            raise TimeoutError("the local model ran past its timeout")
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

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)

    def force(self, text: str) -> None:
        """Append fixed text (buffered until the model next has to choose)."""
        self._pending += text

    def _flush(self) -> None:
        """Feed the buffered text."""
        if self._pending:
            ids = self._encode(self._pending)
            self._forward(ids)
            self.generated += ids
        self._pending = ""

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

    def scores(self, options: Sequence[str]) -> list[float]:
        """The log-likelihood of each whole option after what is written (nothing is appended).

        Each option is tokenized together with the buffered text, as the tokenizer writes the two (a training
        text has ``"}},"`` as ``}`` ``},``, not the ``}}`` the buffer alone would give): the tokens all options
        share within the buffered text are fed once, and each option's own tokens after them are scored, in one
        forward with a block attention mask (each option sees the cache, the shared tokens and its own). The
        cache keeps the shared tokens; the rest of the buffered text stays buffered.
        """
        import torch

        text = self._pending
        joint = [self._encode(text + option) for option in options]
        count, shortest = 0, min(len(ids) for ids in joint)
        while count < shortest - 1 and all(ids[count] == joint[0][count] for ids in joint):
            count += 1
        while count and not text.startswith(self._decode(joint[0][:count])):
            count -= 1  # shared tokens must lie within the buffered text, not in the options
        pending = joint[0][:count]
        consumed = self._decode(pending)
        encoded = [ids[count:] for ids in joint]
        before = self.cache.get_seq_length()
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
        self._pending = text[len(consumed) :]
        values = []
        for ids, s in zip(encoded, starts, strict=True):
            # The last token counts as every token that starts with its text: an option's end is written
            # with what follows it ('"c2"' then '],' is '"],' in training text, not '"' and '],').
            last = logprobs[s + len(ids) - 2] if len(ids) > 1 else base
            values.append(
                float(sum(logprobs[s + j - 1, ids[j]] for j in range(1, len(ids) - 1)))
                + (float(base[ids[0]]) if len(ids) > 1 else 0.0)
                + float(torch.logsumexp(last[self.vocab.starting_with(ids[-1])], dim=0))
            )
        return values

    def decide(self, options: Sequence[str]) -> int:
        """Index of the option the model prefers (see `scores`); with hint words, among those named best."""
        import torch

        if len(options) == 1:
            return 0
        scores = self.scores(options)
        if self.mentions:
            named = [mention_score(self.labels.get(option, option), self.mentions) for option in options]
            best = max(named)
            if best > 0:
                scores = [score if n == best else -math.inf for score, n in zip(scores, named, strict=True)]
        return self._pick(torch.tensor(scores))

    def choose(self, options: Sequence[str]) -> int:
        """Append the option the model prefers (see `decide`); returns its index."""
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
        """A JSON string's characters after its opening quote, up to and including the closing quote.

        The tokens allowed at each step are those of an xgrammar matcher of the string (`Grammars`); the text is
        decoded from all its ids at once, so byte pieces of one character join up. The model choosing to stop
        closes the string (on a whole character, once `min_chars` are written).
        """
        max_chars = self.settings.max_string_chars if max_chars is None else max_chars
        self._flush()
        matcher = self.grammars.matcher({"type": "string", "minLength": min_chars, "maxLength": max_chars})
        matcher.accept_string('"')
        ids: list[int] = []
        text = ""
        while True:
            whole = not text.endswith(_REPLACEMENT)
            if len(text) >= max_chars and whole:
                self.force('"')
                return text
            mask = self.grammars.allowed(matcher) & self.vocab.safe_or_closing
            can_close = bool((mask & self.vocab.quote_first).any())  # the grammar takes the closing quote now
            if can_close:  # and every token that closes the string, whatever follows its quote ('",', "'\"]")
                mask |= self.vocab.closing
            mask[self.vocab.stop_ids] = len(text) >= min_chars and whole
            mask = self._ban_repeats(mask, ids)
            if not mask.any():
                self.force('"')
                return text
            token = self._sample_masked(mask)
            if token in self.vocab.stop_ids:
                self.force('"')
                return text
            if can_close and bool(self.vocab.closing[token]):
                piece = self.vocab.texts[token]
                value = (text + piece[: piece.index('"')])[:max_chars]
                self.force(value[len(text) :] + '"')  # what follows the quote is the schema's to write
                return value
            matcher.accept_token(token)
            full = self.tokenizer.decode([*ids, token])
            if matcher.is_completed():  # the token closed the string: write it with what follows
                self.force(full[len(text) :])
                return full[: full.rindex('"')]
            self._step(token)
            ids.append(token)
            text = full

    def iter_free_text(self, max_new_tokens: int, stop: Sequence[str] = ()) -> Iterator[str]:
        """Unconstrained text, piece by piece, until an end-of-turn token, a stop sequence (not included) or the
        token limit. Pieces hold whole characters only."""
        self._flush()
        ids: list[int] = []
        shown = ""
        for _ in range(max_new_tokens):
            allowed = self.vocab.text
            if self.settings.temperature <= 0:
                allowed = self._ban_repeats(allowed, ids)
            token = self._sample_masked(allowed)
            if token in self.vocab.stop_ids:
                break
            self._step(token)
            ids.append(token)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            cut = min((text.find(s) for s in stop if s and s in text), default=-1)
            if cut != -1:
                if cut > len(shown):
                    yield text[len(shown) : cut]
                return
            if text.endswith(_REPLACEMENT):
                continue
            held = max((len(s) - 1 for s in stop if s), default=0)  # a stop sequence may be starting
            ready = len(text) - held
            if ready > len(shown):
                yield text[len(shown) : ready]
                shown = text[:ready]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if len(text) > len(shown):
            yield text[len(shown) :]

    # -- JSON values ----------------------------------------------------------------------------------------
    def _choices(self, path: tuple[str | int, ...], root: Any) -> list[Any] | None:
        for pattern, given in self.choices.items():
            if match(pattern, path):
                values = given(ChoiceContext(root, path)) if callable(given) else given
                if values is not None:
                    return list(values)
        return None

    def value(self, schema: dict[str, Any], defs: dict[str, Any], path: tuple = (), root: Any = None) -> Any:
        """Write one JSON value valid for `schema` and return it (also attached to `root` at `path`)."""
        result = self._value(schema, defs, path, root)
        if root is not None and path:
            _attach(root, path, result)
        return result

    def _value(self, schema: dict[str, Any], defs: dict[str, Any], path: tuple, root: Any) -> Any:
        schema = resolve(schema, defs)
        allowed = self._choices(path, root)
        if allowed:
            mentions = self.mentions
            self.mentions = next((m for p, m in self.path_mentions.items() if match(p, path)), mentions)
            try:
                return allowed[self.choose([format_json(v) for v in allowed])]
            finally:
                self.mentions = mentions
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
            return self._branch([resolve(b, defs) for b in branches], defs, path, root)
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

    def _branch(self, branches: list[dict], defs: dict, path: tuple, root: Any) -> Any:
        """Choose an ``anyOf``/``oneOf`` branch by the likelihood of its opening text, then write its value."""
        options: list[str] = []
        keep: list[dict] = []
        for branch in branches:
            start = opener(branch, defs)
            if start not in options:
                options.append(start)
                keep.append(branch)
        return self.value(keep[self.decide(options)], defs, path, root)

    def _object(self, schema: dict, defs: dict, path: tuple, root: Any) -> dict:
        """Required properties in schema order; optional ones all (`DecodeSettings.include_optional`, the default)
        or those the model picks: after each value it chooses between going on and ending, then which key."""
        obj: dict[str, Any] = {}
        if root is None:
            root = obj
        else:
            _attach(root, path, obj)
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

    def _array(self, schema: dict, defs: dict, path: tuple, root: Any) -> list:
        items: list[Any] = []
        if root is None:
            root = items
        else:
            _attach(root, path, items)
        item_schema = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", self.settings.max_array_items), self.settings.max_array_items)
        for pattern, bounds in self.lengths.items():
            if match(pattern, path):
                lo, hi = bounds(ChoiceContext(root, path)) if callable(bounds) else bounds
                low = max(low, lo)
                if hi is not None:
                    high = min(hi, schema.get("maxItems", hi))
        high = max(high, low)
        self.force("[")
        while len(items) < high:
            item_path = (*path, len(items))
            allowed = self._choices(item_path, root)
            if allowed is not None:
                allowed = [v for v in allowed if v not in items]  # chosen items are distinct
                if not allowed:
                    break
            if len(items) >= low:
                start = '"' if allowed else opener(resolve(item_schema, defs), defs)[:1]
                if self.decide([(", " if items else "") + start, "]"]) == 1:
                    break
            self.force(", " if items else "")
            if allowed is not None:
                items.append(allowed[self.choose([format_json(v) for v in allowed])])
            else:
                self.value(item_schema, defs, item_path, root)
        self.force("]")
        return items

    def _number(self, schema: dict[str, Any], integer: bool) -> float | int:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is not None and high is not None:
            values = grid(low, high, integer)
            default = schema.get("default")
            if isinstance(default, int | float) and not isinstance(default, bool) and default not in values:
                values = sorted([*values, int(default) if integer else default])  # the tool's usual value
            values = [v for v in values if in_bounds(v, schema)]
            if values:
                return values[self.choose([format_json(v) for v in values])]
        return self._digits(schema, integer)

    def _digits(self, schema: dict[str, Any], integer: bool) -> float | int:
        """An unbounded (or half-bounded) number token by token, the allowed tokens from an xgrammar matcher of
        it (its bounds included). Once the number is complete the model may end it: greedily, when what follows
        a value (an end of turn, ``,`` or ``}``) is likelier than any allowed continuation."""
        import torch

        self._flush()
        limits = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        bounds = {k: v for k, v in schema.items() if k in limits}
        matcher = self.grammars.matcher({"type": "integer" if integer else "number", **bounds})
        ending = [*self.vocab.stop_ids, *self._encode(",")[:1], *self._encode("}")[:1]]
        text, complete = "", False
        while True:
            mask = self.grammars.allowed(matcher)
            complete = bool(mask[self.vocab.stop_ids].any())
            mask[self.vocab.stop_ids] = False
            mask = mask & self.vocab.text
            if not mask.any():
                break
            scores = torch.where(mask, self.logprobs, torch.tensor(float("-inf")))
            if complete:  # ending the number competes as one more option
                scores = torch.cat([scores, self.logprobs[ending].max()[None]])
            token = self._pick(scores)
            if token == len(mask):
                break
            piece = self.vocab.texts[token]
            if len(text) + len(piece) > self.settings.max_number_chars:
                break
            matcher.accept_token(token)
            self._step(token)
            text += piece
            complete = False
        if not complete:  # "", "-", "1.", "1e" at the length cap: a digit completes each
            self.force("0")
            text += "0"
        return int(text) if integer else float(text)

    def finish(self) -> list[int]:
        self._flush()
        return self.generated


def _attach(root: Any, path: tuple, value: Any) -> None:
    node = root
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, list) and path[-1] == len(node):
        node.append(value)
    else:
        node[path[-1]] = value

"""Token masks of JSON values from a maintained grammar engine (xgrammar), for what the model writes freely.

The decoder writes a value's structure itself and scores whole options where a value is one of a few; where the
model writes token by token (a free string, an unbounded number) the allowed tokens at each step come from an
xgrammar matcher of that value's schema. xgrammar works on bytes, so the byte pieces of a multi-byte character
(CJK) are allowed and join up, and a string cannot close inside a character. Chosen over llguidance and
outlines-core by measurement (see benchmarks/bench_grammar.py).
"""

from __future__ import annotations

import json
from typing import Any


class Grammars:
    """Compiled value grammars for one tokenizer (cached by schema), and their matchers' token masks."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: list[int]) -> None:
        import xgrammar

        self._xgr = xgrammar
        info = xgrammar.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=stop_ids)
        self._compiler = xgrammar.GrammarCompiler(info)
        self._compiled: dict[str, Any] = {}
        self._bitmask = xgrammar.allocate_token_bitmask(1, vocab_size)
        self.vocab_size = vocab_size

    def matcher(self, schema: dict[str, Any]) -> Any:
        """A fresh matcher of one JSON value of `schema` (``{"type": "string", "maxLength": 40}``...)."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._compiled:
            self._compiled[key] = self._compiler.compile_json_schema(key, any_whitespace=False)
        return self._xgr.GrammarMatcher(self._compiled[key])

    def allowed(self, matcher: Any):
        """The tokens `matcher` allows next, as a boolean tensor over the vocabulary."""
        import torch

        matcher.fill_next_token_bitmask(self._bitmask)
        scores = torch.zeros(1, self.vocab_size)
        self._xgr.apply_token_bitmask_inplace(scores, self._bitmask)
        return torch.isfinite(scores[0])

"""KV states of earlier prompts, reused by later prompts that start with the same tokens (within a process).

Every orchestrator call starts with the same system turn and tool list, every planner call with the same
instructions: their KV state is computed once. Entries are keyed by the exact token ids they hold; a prompt reuses
the entry sharing its longest prefix (a copy of it, cropped to that prefix), so entries are never changed.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    """Up to `size` KV caches (transformers ``DynamicCache``), least recently used dropped first."""

    def __init__(self, size: int = 4, min_tokens: int = 16) -> None:
        self.size = size
        self.min_tokens = min_tokens
        self._entries: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, ids: Sequence[int]) -> tuple[int, Any]:
        """``(n, cache)``: a copy of the cached KV state of ``ids[:n]`` (n < len(ids): at least one token is left
        to feed), or ``(0, None)`` when no entry shares `min_tokens` with `ids`."""
        with self._lock:
            best, best_key = 0, None
            for key in self._entries:
                n = common_prefix(key, ids[:-1])
                if n > best:
                    best, best_key = n, key
            if best_key is None or best < self.min_tokens:
                return 0, None
            self._entries.move_to_end(best_key)
            cache = copy.deepcopy(self._entries[best_key])
        extra = cache.get_seq_length() - best
        if extra > 0:
            cache.crop(-extra)
        return best, cache

    def put(self, ids: Sequence[int], cache: Any) -> None:
        """Keep `cache` (holding exactly `ids`; the caller hands it over and no longer changes it)."""
        if self.size <= 0 or len(ids) < self.min_tokens:
            return
        with self._lock:
            key = tuple(ids)
            self._entries.pop(key, None)
            self._entries[key] = cache
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

"""Local transformers chat models: the chat format shared with training, constrained decoding, the chat model.

- `chat_format`: TRL's qwen2.5 template, prompt rendering, `format_completion` / `parse_completion` (what
  training imports);
- `choices`: allowed values by argument path, given by the caller, and the hint policy;
- `json_schema` and `decoding`: schema-constrained decoding on one KV cache;
- `prefix_cache`: KV states of shared prompt prefixes, reused across calls;
- `chat_model`: `LocalChatModel`.

Importing this package imports no torch.
"""

from pixplan.graph.local.chat_model import LocalChatModel, is_local_model

__all__ = ["LocalChatModel", "is_local_model"]

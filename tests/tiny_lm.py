"""A tiny random causal LM for tests: Qwen2 (hidden 64, 2 layers) with a byte-level BPE tokenizer trained in
process and TRL's qwen2_5 chat template. Built in well under a second, no download.

    from tiny_lm import tiny_local_model
    model = tiny_local_model()  # a LocalChatModel
"""

from __future__ import annotations

from functools import cache

from pixplan.graph.local.chat_format import prepare_tokenizer
from pixplan.graph.local.chat_model import LocalChatModel

_CORPUS = [
    '<tool_call>\n{"name": "recolor", "arguments": {"image_id": "abc", "region": "r1", "color": "green"}}\n'
    "</tool_call> the plan checklist steps make the background green and the slogan eco friendly",
    "Replace the slogan text with a greener one. Keep the product unchanged. whole background r1 r2 r3",
]


@cache
def _tokenizer_and_config():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Config

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(_CORPUS * 10, trainer)
    config = Qwen2Config(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
    )
    return bpe, config


def tiny_tokenizer():
    from transformers import PreTrainedTokenizerFast

    bpe, _ = _tokenizer_and_config()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|im_start|>"
    )
    return prepare_tokenizer(tokenizer)


def tiny_causal_lm(seed: int = 0):
    import torch
    from transformers import Qwen2ForCausalLM

    _, config = _tokenizer_and_config()
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config).eval()


def tiny_local_model(seed: int = 0, **kwargs) -> LocalChatModel:
    """A LocalChatModel on random weights (short strings by default, to keep tests fast)."""
    kwargs.setdefault("max_string_chars", 40)
    kwargs.setdefault("max_array_items", 3)
    kwargs.setdefault("max_tokens", 24)
    return LocalChatModel(model=tiny_causal_lm(seed), tokenizer=tiny_tokenizer(), model_name="tiny", **kwargs)

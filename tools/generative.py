"""Generative tools on diffusers: region inpainting, instruction editing and background generation.

Which model runs, on which device and in which precision is the user's choice, not the orchestrator's: it comes
from `GenerativeSettings` (the tool call's ``config["configurable"]["generative"]``, else ``PIXPLAN_*``
environment variables), while the model fills only the edit's own arguments (prompt, strength, guidance, steps,
seed, region). Pipelines load on first use and are cached per process, keyed by model, device, dtype and
offload. torch and diffusers are imported inside functions, so importing this module stays light.

Each tool crops the region with some context around it, resizes the crop to the model's resolution, runs the
pipeline, resizes the result back and hands it to `apply_edit`, which blends it in through a feathered mask:
pixels beyond the feathered edge of the region never change.

    from pixplan.tools.generative import GENERATIVE_TOOLS, GenerativeSettings
    config = {"configurable": {"store_dir": "...", "generative": GenerativeSettings(device="cuda", dtype="float16")}}
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import ToolException, tool
from PIL import Image
from pydantic import Field

from pixplan.tools.calls import forbid_unknown_arguments, settings_from_config
from pixplan.tools.editing import apply_edit
from pixplan.tools.regions import RegionArg, RegionCatalog, nonzero_bounds
from pixplan.tools.store import ImageRef

DEFAULT_INPAINT_MODEL = "stable-diffusion-v1-5/stable-diffusion-inpainting"
DEFAULT_EDIT_MODEL = "timbrooks/instruct-pix2pix"

#: Pipeline classes for instruction editing, by the `_class_name` of the model's model_index.json.
EDIT_PIPELINES = ("StableDiffusionInstructPix2PixPipeline", "FluxKontextPipeline", "QwenImageEditPipeline")
#: Pipelines whose classifier-free guidance scale is called `true_cfg_scale` (their `guidance_scale` is distilled).
TRUE_CFG_PIPELINES = ("QwenImageEditPipeline",)

Prompt = Annotated[str, Field(min_length=1)]
Guidance = Annotated[float, Field(ge=0.0, le=30.0)]
Steps = Annotated[int, Field(ge=1, le=150)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]


class ModelUnavailableError(ToolException):
    """A generative or grounding model could not be loaded: missing weights, wrong path, missing packages."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(kw_only=True)
class GenerativeSettings:
    """Where generative models come from and how they run: the user's settings, never the orchestrator's."""

    inpaint_model: str = field(
        default_factory=lambda: os.environ.get("PIXPLAN_INPAINT_MODEL", DEFAULT_INPAINT_MODEL),
        metadata={
            "help": "SD or SDXL model id or local diffusers folder for inpainting ($PIXPLAN_INPAINT_MODEL)."
        },
    )
    edit_model: str = field(
        default_factory=lambda: os.environ.get("PIXPLAN_EDIT_MODEL", DEFAULT_EDIT_MODEL),
        metadata={
            "help": "InstructPix2Pix, FLUX.1 Kontext or Qwen-Image-Edit model id or folder ($PIXPLAN_EDIT_MODEL)."
        },
    )
    device: str = field(
        default_factory=lambda: os.environ.get("PIXPLAN_DEVICE", "auto"),
        metadata={"help": "torch device, or 'auto' (CUDA, then MPS, then CPU) ($PIXPLAN_DEVICE)."},
    )
    dtype: str = field(
        default_factory=lambda: os.environ.get("PIXPLAN_DTYPE", "auto"),
        metadata={"help": "float32, float16, bfloat16, or 'auto' (half precision on GPUs) ($PIXPLAN_DTYPE)."},
    )
    cpu_offload: bool = field(
        default_factory=lambda: _env_flag("PIXPLAN_CPU_OFFLOAD"),
        metadata={"help": "Keep models in CPU memory and move each to the GPU only while it runs."},
    )
    context: float = field(
        default=0.25, metadata={"help": "Context kept around the region, as a fraction of its larger side."}
    )
    resolution: int | None = field(
        default=None,
        metadata={"help": "Longer side the crop is resized to; None: the model's own (512, 1024)."},
    )
    inpaint_pipeline: Any = field(
        default=None, metadata={"help": "An already built inpainting pipeline, used instead of loading one."}
    )
    edit_pipeline: Any = field(
        default=None,
        metadata={"help": "An already built instruction-editing pipeline, used instead of loading one."},
    )


# ---------------------------------------------------------------------------------------------- loading

_PIPELINES: dict[tuple[str, str, str, str, bool], Any] = {}
_LOCK = threading.Lock()


def missing_model_message(model: str, setting: str, reason: str) -> str:
    """How to provide a model that could not be loaded."""
    hf_home = os.environ.get("HF_HOME", "~/.cache/huggingface")
    offline = " (HF_HUB_OFFLINE=1 is set, so only cached models load)" if _env_flag("HF_HUB_OFFLINE") else ""
    env = "PIXPLAN_" + setting.upper()
    return (
        f"model {model!r} could not be loaded{offline}: {reason}. Provide it as a local folder (a diffusers or "
        f"transformers save_pretrained folder) or as a Hugging Face model id whose weights are in the cache "
        f"(download once with `hf download {model}`; the cache is HF_HOME={hf_home}; offline runs then set "
        f"HF_HUB_OFFLINE=1), and choose it with configurable['generative' or 'grounding'].{setting} or ${env}."
    )


def resolve_device(device: str) -> str:
    """'auto' -> cuda, mps or cpu, whichever is there."""
    import torch

    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str, pipeline_class: str) -> Any:
    """'auto' -> float32 on CPU; on GPUs bfloat16 for FLUX/Qwen (trained in it), float16 for Stable Diffusion."""
    import torch

    if dtype == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if pipeline_class.startswith(("Flux", "Qwen")) else torch.float16
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"dtype must be float32, float16, bfloat16 or auto, got {dtype!r}")
    return getattr(torch, dtype)


def pipeline_class_name(model: str, task: Literal["inpaint", "edit"]) -> str:
    """The diffusers pipeline class for `model` and `task`, chosen from the model's model_index.json."""
    try:
        from diffusers import DiffusionPipeline
    except ImportError as error:
        raise ModelUnavailableError(
            f"generative tools need torch and diffusers ({error}); install them with `pip install pixplan[diffusion]`"
        ) from None
    setting = f"{task}_model"
    try:
        # Local files only, here and below: a model that is not local fails at once, not after hub retries.
        name = DiffusionPipeline.load_config(model, local_files_only=True)["_class_name"]
    except (OSError, ValueError, KeyError) as error:
        raise ModelUnavailableError(
            missing_model_message(model, setting, str(error).splitlines()[0])
        ) from None
    if task == "inpaint":
        if "XL" in name:
            return "StableDiffusionXLInpaintPipeline"
        if name.startswith("StableDiffusion"):
            return "StableDiffusionInpaintPipeline"
        raise ModelUnavailableError(
            f"inpainting needs a Stable Diffusion or SDXL model; {model!r} is a {name}. Set inpaint_model."
        )
    if name not in EDIT_PIPELINES:
        raise ModelUnavailableError(
            f"instruction editing needs one of {', '.join(EDIT_PIPELINES)}; {model!r} is a {name}. Set edit_model."
        )
    return name


def load_pipeline(model: str, task: Literal["inpaint", "edit"], settings: GenerativeSettings) -> Any:
    """The pipeline for `model`, loaded once per (model, class, device, dtype, offload) and process."""
    import diffusers
    import torch

    name = pipeline_class_name(model, task)
    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device, name)
    key = (model, name, device, str(dtype), settings.cpu_offload)
    with _LOCK:
        if key in _PIPELINES:
            return _PIPELINES[key]
        cls = getattr(diffusers, name, None)
        if cls is None:
            raise ModelUnavailableError(
                f"{model!r} needs diffusers.{name}, which diffusers {diffusers.__version__} lacks; upgrade diffusers"
            )
        try:
            pipe = cls.from_pretrained(model, dtype=dtype, local_files_only=True)
        except (OSError, ValueError) as error:
            raise ModelUnavailableError(
                missing_model_message(model, f"{task}_model", str(error).splitlines()[0])
            ) from None
        if settings.cpu_offload and device != "cpu":
            pipe.enable_model_cpu_offload(device=torch.device(device))
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        _PIPELINES[key] = pipe
        return pipe


def clear_pipelines() -> None:
    """Forget every cached pipeline (frees their memory once nothing else holds them)."""
    with _LOCK:
        _PIPELINES.clear()


def _pipeline(settings: GenerativeSettings, task: Literal["inpaint", "edit"]) -> Any:
    injected = settings.inpaint_pipeline if task == "inpaint" else settings.edit_pipeline
    if injected is not None:
        return injected
    return load_pipeline(settings.inpaint_model if task == "inpaint" else settings.edit_model, task, settings)


# ---------------------------------------------------------------------------------------------- region crops


def model_resolution(pipe: Any, settings: GenerativeSettings) -> int:
    """Longer side of the model's input: the setting, else the UNet's native size (512 SD, 1024 SDXL), else 1024."""
    if settings.resolution is not None:
        return settings.resolution
    unet = getattr(pipe, "unet", None)
    if unet is not None:
        return int(unet.config.sample_size * pipe.vae_scale_factor)
    return 1024


def size_multiple(pipe: Any) -> int:
    """Input sizes must be multiples of this: 8 for UNet pipelines, 16 for transformers that pack 2x2 latents."""
    scale = int(getattr(pipe, "vae_scale_factor", 8))
    return max(8, scale if getattr(pipe, "unet", None) is not None else 2 * scale)


def context_box(mask: np.ndarray, context: float) -> tuple[int, int, int, int]:
    """The region's bounding box grown by `context` times its larger side, clipped to the image."""
    bounds = nonzero_bounds(mask > 0.5)
    if bounds is None:
        raise ToolException("the region is empty on this image")
    left, top, right, bottom = bounds
    margin = round(context * max(right - left, bottom - top))
    height, width = mask.shape
    return (
        max(left - margin, 0),
        max(top - margin, 0),
        min(right + margin, width),
        min(bottom + margin, height),
    )


def fit_size(size: tuple[int, int], resolution: int, multiple: int) -> tuple[int, int]:
    """Scale (width, height) so the longer side is `resolution`, both sides rounded to `multiple`."""
    scale = resolution / max(size)
    return tuple(max(multiple, round(side * scale / multiple) * multiple) for side in size)  # type: ignore[return-value]


def run_in_region(
    pipe: Any,
    image: Image.Image,
    mask: np.ndarray,
    settings: GenerativeSettings,
    call: dict[str, Any],
    *,
    with_mask: bool,
) -> Image.Image:
    """Run `pipe` on the region's crop at the model's resolution and paste the result back, full size."""
    import torch

    box = context_box(mask, settings.context)
    crop = image.crop(box)
    width, height = fit_size(crop.size, model_resolution(pipe, settings), size_multiple(pipe))
    arguments = {**call, "image": crop.resize((width, height), Image.Resampling.LANCZOS)}
    if with_mask:
        hard = (mask[box[1] : box[3], box[0] : box[2]] > 0.5).astype(np.uint8) * 255
        arguments["mask_image"] = Image.fromarray(hard).resize((width, height), Image.Resampling.NEAREST)
    if "height" in _call_parameters(pipe):
        arguments.update(height=height, width=width)
    with torch.inference_mode():
        output = pipe(**arguments).images[0]
    result = image.copy()
    result.paste(output.convert("RGB").resize(crop.size, Image.Resampling.LANCZOS), box[:2])
    return result


def _call_parameters(pipe: Any) -> set[str]:
    import inspect

    return set(inspect.signature(pipe.__call__).parameters)


def _generator(seed: int) -> Any:
    """A CPU generator: the same seed gives the same noise on every device."""
    import torch

    return torch.Generator("cpu").manual_seed(seed)


def _check_steps(strength: float, num_inference_steps: int) -> None:
    if int(strength * num_inference_steps) < 1:
        raise ToolException(
            f"strength {strength} x num_inference_steps {num_inference_steps} leaves no denoising step; "
            "raise strength or num_inference_steps"
        )


# ---------------------------------------------------------------------------------------------- tools


@tool(parse_docstring=True, response_format="content_and_artifact")
def inpaint_region(
    image_id: str,
    region: RegionArg,
    prompt: Prompt,
    negative_prompt: str = "",
    strength: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0,
    guidance_scale: Guidance = 7.5,
    num_inference_steps: Steps = 30,
    seed: Seed = 0,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Repaint a region with a diffusion model from a text prompt (add, replace or restyle an object in place).

    Args:
        image_id: Id of the image to edit.
        prompt: What the region should show afterwards, e.g. 'a potted fern on a wooden shelf'.
        negative_prompt: What it should not show, e.g. 'text, watermark, blur'.
        strength: How much to change, 0 (keep) to 1 (paint anew).
        guidance_scale: How closely to follow the prompt (typically 5-9).
        num_inference_steps: Denoising steps: more is slower and finer (typically 20-50).
        seed: Random seed; the same seed gives the same result.
    """
    _check_steps(strength, num_inference_steps)
    settings = settings_from_config(config, "generative", GenerativeSettings)

    def edit(image: Image.Image, mask: np.ndarray, catalog: RegionCatalog | None) -> Image.Image:
        pipe = _pipeline(settings, "inpaint")
        call = {
            "prompt": prompt,
            "negative_prompt": negative_prompt or None,
            "strength": strength,
            "guidance_scale": guidance_scale,
            "num_inference_steps": num_inference_steps,
            "generator": _generator(seed),
        }
        return run_in_region(pipe, image, mask, settings, call, with_mask=True)

    return apply_edit(
        tool="inpaint_region",
        image_id=image_id,
        region=region,
        args={
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "strength": strength,
            "guidance_scale": guidance_scale,
            "num_inference_steps": num_inference_steps,
            "seed": seed,
        },
        edit=edit,
        config=config,
    )


@tool(parse_docstring=True, response_format="content_and_artifact")
def edit_by_instruction(
    image_id: str,
    region: RegionArg,
    prompt: Prompt,
    negative_prompt: str = "",
    guidance_scale: Guidance = 7.5,
    image_guidance_scale: Annotated[float, Field(ge=1.0, le=5.0)] = 1.5,
    num_inference_steps: Steps = 20,
    seed: Seed = 0,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Edit a region by a written instruction, keeping its layout (e.g. 'make it snowy', 'turn the cup green').

    Args:
        image_id: Id of the image to edit.
        prompt: The instruction, e.g. 'make it look like winter'.
        negative_prompt: What the result should not show.
        guidance_scale: How strongly to follow the instruction (typically 5-9).
        image_guidance_scale: How closely to stay with the original image (1-5, InstructPix2Pix only).
        num_inference_steps: Denoising steps: more is slower and finer (typically 20-50).
        seed: Random seed; the same seed gives the same result.
    """
    settings = settings_from_config(config, "generative", GenerativeSettings)

    def edit(image: Image.Image, mask: np.ndarray, catalog: RegionCatalog | None) -> Image.Image:
        pipe = _pipeline(settings, "edit")
        name = type(pipe).__name__
        call: dict[str, Any] = {
            "prompt": prompt,
            "num_inference_steps": num_inference_steps,
            "generator": _generator(seed),
        }
        if name in TRUE_CFG_PIPELINES:
            call.update(true_cfg_scale=guidance_scale, negative_prompt=negative_prompt or " ")
        else:
            call.update(guidance_scale=guidance_scale)
            if negative_prompt:
                call["negative_prompt"] = negative_prompt
        if "image_guidance_scale" in _call_parameters(pipe):
            call["image_guidance_scale"] = image_guidance_scale
        return run_in_region(pipe, image, mask, settings, call, with_mask=False)

    return apply_edit(
        tool="edit_by_instruction",
        image_id=image_id,
        region=region,
        args={
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "guidance_scale": guidance_scale,
            "image_guidance_scale": image_guidance_scale,
            "num_inference_steps": num_inference_steps,
            "seed": seed,
        },
        edit=edit,
        config=config,
    )


@tool(parse_docstring=True, response_format="content_and_artifact")
def generate_background(
    image_id: str,
    prompt: Prompt,
    negative_prompt: str = "",
    region: RegionArg = "background",
    guidance_scale: Guidance = 7.5,
    num_inference_steps: Steps = 30,
    seed: Seed = 0,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Paint a new background from a text prompt, keeping the foreground objects and the text untouched.

    Args:
        image_id: Id of the image to edit.
        prompt: The new background, e.g. 'a sunlit forest clearing, soft focus'.
        negative_prompt: What the background should not show, e.g. 'people, text'.
        guidance_scale: How closely to follow the prompt (typically 5-9).
        num_inference_steps: Denoising steps: more is slower and finer (typically 20-50).
        seed: Random seed; the same seed gives the same result.
    """
    settings = settings_from_config(config, "generative", GenerativeSettings)

    def edit(image: Image.Image, mask: np.ndarray, catalog: RegionCatalog | None) -> Image.Image:
        pipe = _pipeline(settings, "inpaint")
        call = {
            "prompt": prompt,
            "negative_prompt": negative_prompt or None,
            "strength": 1.0,
            "guidance_scale": guidance_scale,
            "num_inference_steps": num_inference_steps,
            "generator": _generator(seed),
        }
        return run_in_region(pipe, image, mask, settings, call, with_mask=True)

    return apply_edit(
        tool="generate_background",
        image_id=image_id,
        region=region,
        args={
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "guidance_scale": guidance_scale,
            "num_inference_steps": num_inference_steps,
            "seed": seed,
        },
        edit=edit,
        config=config,
    )


#: The generative tools, in the order a model sees them. Not part of `pixplan.tools.TOOLS`, which stays offline.
GENERATIVE_TOOLS = forbid_unknown_arguments([inpaint_region, edit_by_instruction, generate_background])

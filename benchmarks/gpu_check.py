"""Seconds per denoising step and peak GPU memory of pixplan's generative pipeline classes, at real size.

The pipelines are built from the real model configs (written out below, since the hub may be unreachable) with
random weights: timing and memory do not depend on the weights. Each pipeline runs with and without
`enable_model_cpu_offload`.

    python benchmarks/gpu_check.py                       # CUDA, float16, SD 1.5 / SDXL inpaint, InstructPix2Pix
    python benchmarks/gpu_check.py --dtype bfloat16 --steps 10
    python benchmarks/gpu_check.py --tiny --device cpu   # 64x64 smoke test of the same code, no GPU needed

Needs torch, diffusers and transformers only (not pixplan itself), so it runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import statistics
import time
from typing import Any

KINDS = ("sd-inpaint", "sdxl-inpaint", "instruct-pix2pix")


def byte_chars() -> list[str]:
    """The 256 printable stand-ins of byte-level BPE (GPT-2/CLIP `bytes_to_unicode`)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def clip_tokenizer(max_length: int = 77) -> Any:
    """A CLIP tokenizer with a byte-level vocabulary of 514 tokens and no merges, built in-process.

    Ids: one per byte (0-255), one per word-final byte (256-511), then start (512) and end/pad (513), special
    tokens last as in CLIP (OWLv2 treats a query whose first id is 0 as padding). These ids stay below any
    text encoder's vocabulary, which is all a pipeline needs.
    """
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for char in byte_chars():
            vocab[char + suffix] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


#: Token ids of `clip_tokenizer`, for text encoder configs.
TOKEN_IDS = {"bos_token_id": 512, "eos_token_id": 513, "pad_token_id": 513}


# --- configs: the real ones (from the model repos' config.json files) and tiny ones of the same shape ---

SD_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}
SDXL_UNET = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
TINY_UNET = {
    "block_out_channels": [32, 64],
    "layers_per_block": 2,
    "sample_size": 32,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4],
    "norm_num_groups": 32,
}
TINY_XL_UNET = {
    **TINY_UNET,
    "cross_attention_dim": 64,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 80,  # 6 time ids x 8 + the pooled text embedding (32)
    "transformer_layers_per_block": [1, 2],
    "use_linear_projection": True,
}
VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SDXL_VAE = {**VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
TINY_VAE = {
    **VAE,
    "block_out_channels": [32, 64],
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "sample_size": 64,
}
# CLIP ViT-L/14 text tower (SD 1.5, SDXL's first encoder) and OpenCLIP ViT-bigG/14 (SDXL's second encoder).
CLIP_L = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
CLIP_G = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "gelu",
    "projection_dim": 1280,
}
TINY_CLIP = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "max_position_embeddings": 77,
    "vocab_size": 1000,
    "hidden_act": "gelu",
    "projection_dim": 32,
}
SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def _text_config(values: dict[str, Any]) -> Any:
    from transformers import CLIPTextConfig

    # The pooled output is read at the end token of `clip_tokenizer`.
    return CLIPTextConfig(**values, **TOKEN_IDS)


def build_pipeline(
    kind: str, *, tiny: bool = False, device: str = "cpu", dtype: Any = None, seed: int = 0
) -> Any:
    """A diffusers pipeline of `kind` with random weights: real configs, or tiny ones of the same shape.

    Modules are created directly on `device` (fast even for SDXL's 2.6B-parameter UNet on a GPU).
    """
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionInstructPix2PixPipeline,
        StableDiffusionXLInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if kind not in KINDS:
        raise ValueError(f"unknown pipeline kind {kind!r}; choose from {', '.join(KINDS)}")
    dtype = dtype or torch.float32
    torch.manual_seed(seed)
    xl = kind == "sdxl-inpaint"
    unet_config = dict((TINY_XL_UNET if xl else TINY_UNET) if tiny else (SDXL_UNET if xl else SD_UNET))
    unet_config["in_channels"] = 8 if kind == "instruct-pix2pix" else 9
    with torch.device(device):
        unet = UNet2DConditionModel(**unet_config)
        vae = AutoencoderKL(**(TINY_VAE if tiny else SDXL_VAE if xl else VAE))
        text_encoder = CLIPTextModel(_text_config(TINY_CLIP if tiny else CLIP_L))
        text_encoder_2 = (
            CLIPTextModelWithProjection(_text_config(TINY_CLIP if tiny else CLIP_G)) if xl else None
        )
    components: dict[str, Any] = {
        "unet": unet.to(dtype).eval(),
        "vae": vae.to(dtype).eval(),
        "text_encoder": text_encoder.to(dtype).eval(),
        "tokenizer": clip_tokenizer(),
        "scheduler": DDIMScheduler(**SCHEDULER),
    }
    if xl:
        assert text_encoder_2 is not None
        components.update(
            text_encoder_2=text_encoder_2.to(dtype).eval(),
            tokenizer_2=clip_tokenizer(),
            requires_aesthetics_score=False,
        )
        return StableDiffusionXLInpaintPipeline(**components)
    components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    if kind == "instruct-pix2pix":
        return StableDiffusionInstructPix2PixPipeline(**components)
    return StableDiffusionInpaintPipeline(**components)


def resolution(pipe: Any) -> int:
    """The pipeline's native resolution: UNet sample size times the VAE's down-scaling."""
    return int(pipe.unet.config.sample_size * pipe.vae_scale_factor)


def inputs(kind: str, size: int, steps: int, seed: int = 0) -> dict[str, Any]:
    """Call arguments for one run: a square test image, a centred mask, a fixed generator."""
    import numpy as np
    import torch
    from PIL import Image

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    args: dict[str, Any] = {
        "prompt": "a wooden table in a sunny garden",
        "image": image,
        "num_inference_steps": steps,
        "generator": torch.Generator("cpu").manual_seed(seed),
        "output_type": "pil",
    }
    if kind == "instruct-pix2pix":
        return args
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 255
    return {**args, "mask_image": Image.fromarray(mask), "height": size, "width": size, "strength": 1.0}


def time_run(pipe: Any, kind: str, *, steps: int, device: str) -> dict[str, float]:
    """One timed run: median seconds between step ends, total seconds, peak GPU memory (GiB)."""
    import torch

    cuda = device.startswith("cuda")
    marks: list[float] = []

    def on_step_end(_pipe: Any, _step: int, _timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        if cuda:
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        return kwargs

    size = resolution(pipe)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.inference_mode():
        output = pipe(**inputs(kind, size, steps), callback_on_step_end=on_step_end)
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    assert output.images[0].size == (size, size), output.images[0].size
    gaps = [later - earlier for earlier, later in itertools.pairwise(marks)]
    return {
        "size": size,
        "sec_per_step": statistics.median(gaps) if gaps else total,
        "total_s": total,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        "steps": len(marks),
    }


def check(
    kind: str, *, tiny: bool, device: str, dtype: Any, steps: int, offload: bool
) -> list[dict[str, Any]]:
    """Build one pipeline, warm it up, time it on `device`, then again with model CPU offload (CUDA only)."""
    import torch

    pipe = build_pipeline(kind, tiny=tiny, device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe.to(device)
    params = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    time_run(pipe, kind, steps=2, device=device)  # warm-up: kernels, allocator, autotuning
    rows = [
        {
            "kind": kind,
            "offload": False,
            "unet_mparams": params,
            **time_run(pipe, kind, steps=steps, device=device),
        }
    ]
    if offload and device.startswith("cuda"):
        pipe.enable_model_cpu_offload(device=device)
        gc.collect()
        torch.cuda.empty_cache()
        time_run(pipe, kind, steps=2, device=device)
        rows.append(
            {
                "kind": kind,
                "offload": True,
                "unet_mparams": params,
                **time_run(pipe, kind, steps=steps, device=device),
            }
        )
    del pipe
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def _gib(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f} GiB"  # NaN off CUDA


def table(rows: list[dict[str, Any]], *, dtype: str, device_name: str) -> str:
    """The results as a Markdown table."""
    lines = [
        f"Device: {device_name}, dtype {dtype}, random weights, DDIM, classifier-free guidance on (batch 2).",
        "",
        "| pipeline | size | UNet params | CPU offload | s / step | total s | steps | peak GPU memory |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['kind']} | {row['size']}x{row['size']} | {row['unet_mparams']:.0f} M | "
            f"{'yes' if row['offload'] else 'no'} | {row['sec_per_step']:.3f} | {row['total_s']:.2f} | "
            f"{row['steps']} | {_gib(row['peak_gib'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float16", "bfloat16", "float32"],
        help="default: float16 on CUDA, else float32",
    )
    parser.add_argument("--steps", type=int, default=8, help="denoising steps of the timed run")
    parser.add_argument("--tiny", action="store_true", help="tiny configs at 64x64 (a smoke test)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--no-offload", action="store_true", help="skip the runs with model CPU offload")
    args = parser.parse_args(argv)

    import torch

    dtype_name = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    dtype = getattr(torch, dtype_name)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            parser.error("no CUDA device; use --tiny --device cpu for the CPU smoke test")
        device_name = torch.cuda.get_device_name(torch.device(args.device))
    else:
        device_name = args.device
    import diffusers

    diffusers.utils.logging.set_verbosity_error()
    rows: list[dict[str, Any]] = []
    for kind in args.kinds:
        rows += check(
            kind,
            tiny=args.tiny,
            device=args.device,
            dtype=dtype,
            steps=args.steps,
            offload=not args.no_offload,
        )
        print(f"{kind}: done", flush=True)

    print(f"\ntorch {torch.__version__}, diffusers {diffusers.__version__}")
    print(table(rows, dtype=dtype_name, device_name=device_name), flush=True)
    return rows


if __name__ == "__main__":
    main()

"""Tiny random diffusion, detection and segmentation models built from configs, for tests (no download).

The diffusion pipelines come from `benchmarks/gpu_check.py` (the same builders its `--tiny` mode times); the
grounding models are OWLv2 and CLIPSeg with two small layers. Saved with `save_pretrained`, they load by path
exactly as users' real models do.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"

TEXT = {
    "vocab_size": 600,
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "max_position_embeddings": 16,
    "bos_token_id": 512,
    "eos_token_id": 513,
    "pad_token_id": 513,
}
VISION = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "image_size": 64,
    "patch_size": 16,
}


@functools.cache
def gpu_check() -> ModuleType:
    """benchmarks/gpu_check.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pipeline(kind: str) -> Any:
    """A tiny diffusers pipeline: 'sd-inpaint', 'sdxl-inpaint' or 'instruct-pix2pix'."""
    return gpu_check().build_pipeline(kind, tiny=True)


def save_grounding_models(root: Path) -> dict[str, str]:
    """Save a tiny OWLv2 and a tiny CLIPSeg (with processors) under `root`; returns the grounding settings."""
    import torch
    from transformers import (
        CLIPSegConfig,
        CLIPSegForImageSegmentation,
        CLIPSegProcessor,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessorPil,
        Owlv2Processor,
        ViTImageProcessorPil,
    )

    tokenizer = gpu_check().clip_tokenizer(max_length=16)
    torch.manual_seed(0)
    Owlv2ForObjectDetection(
        Owlv2Config(text_config=TEXT, vision_config=VISION, projection_dim=32)
    ).save_pretrained(root / "owlv2")
    Owlv2Processor(
        image_processor=Owlv2ImageProcessorPil(size={"height": 64, "width": 64}), tokenizer=tokenizer
    ).save_pretrained(root / "owlv2")
    CLIPSegForImageSegmentation(
        CLIPSegConfig(
            text_config=TEXT,
            vision_config=VISION,
            projection_dim=32,
            reduce_dim=16,
            extract_layers=[0, 1],
            decoder_num_attention_heads=2,
            decoder_intermediate_size=32,
        )
    ).save_pretrained(root / "clipseg")
    CLIPSegProcessor(
        image_processor=ViTImageProcessorPil(size={"height": 64, "width": 64}), tokenizer=tokenizer
    ).save_pretrained(root / "clipseg")
    return {"detector_model": str(root / "owlv2"), "segmenter_model": str(root / "clipseg"), "device": "cpu"}

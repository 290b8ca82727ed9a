"""Grounding: find regions by description with open-vocabulary models, and add them to the region catalog.

- `find_region` detects boxes with OWLv2 (`Owlv2ForObjectDetection`);
- `segment_region` segments a mask with CLIPSeg (`CLIPSegForImageSegmentation`), stored as a mask image.

Both add ``object`` regions labelled with the description to the image's catalog (starting one if the image has
none) and return the new region ids; the image itself is unchanged (the artifact is its own reference). Models
come from `GroundingSettings` (``config["configurable"]["grounding"]``, else ``PIXPLAN_DETECTOR_MODEL`` and
``PIXPLAN_SEGMENTER_MODEL``), load on first use and are cached per process. torch and transformers are imported
inside functions.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import ToolException, tool
from PIL import Image
from pydantic import Field
from typing_extensions import TypedDict

from pixplan.tools.calls import forbid_unknown_arguments, settings_from_config
from pixplan.tools.editing import load_for_edit
from pixplan.tools.generative import ModelUnavailableError, missing_model_message, resolve_device
from pixplan.tools.regions import CatalogRegion, RegionCatalog, load_catalog, pixels_to_box, save_catalog
from pixplan.tools.store import ImageRef, ImageStore, store_from_config

DEFAULT_DETECTOR_MODEL = "google/owlv2-base-patch16-ensemble"
DEFAULT_SEGMENTER_MODEL = "CIDAS/clipseg-rd64-refined"

Description = Annotated[str, Field(min_length=1, max_length=200)]
Score = Annotated[float, Field(ge=0.0, le=1.0)]


@dataclass(kw_only=True)
class GroundingSettings:
    """Which detection and segmentation models run, and where: the user's settings, never the orchestrator's."""

    detector_model: str = field(
        default_factory=lambda: os.environ.get("PIXPLAN_DETECTOR_MODEL", DEFAULT_DETECTOR_MODEL),
        metadata={"help": "OWLv2 model id or local folder ($PIXPLAN_DETECTOR_MODEL)."},
    )
    segmenter_model: str = field(
        default_factory=lambda: os.environ.get("PIXPLAN_SEGMENTER_MODEL", DEFAULT_SEGMENTER_MODEL),
        metadata={"help": "CLIPSeg model id or local folder ($PIXPLAN_SEGMENTER_MODEL)."},
    )
    device: str = field(
        default_factory=lambda: os.environ.get("PIXPLAN_DEVICE", "auto"),
        metadata={"help": "torch device, or 'auto' (CUDA, then MPS, then CPU) ($PIXPLAN_DEVICE)."},
    )


# ---------------------------------------------------------------------------------------------- models

_MODELS: dict[tuple[str, str, str], tuple[Any, Any]] = {}
_LOCK = threading.Lock()


def load_model(model: str, kind: str, device: str) -> tuple[Any, Any]:
    """(model, processor) for `kind` 'detector' (OWLv2) or 'segmenter' (CLIPSeg), loaded once per process."""
    try:
        import transformers
    except ImportError as error:
        raise ModelUnavailableError(
            f"grounding tools need torch and transformers ({error}); install them with `pip install pixplan[diffusion]`"
        ) from None
    device = resolve_device(device)
    key = (kind, model, device)
    with _LOCK:
        if key not in _MODELS:
            if kind == "detector":
                model_class, processor_class = (
                    transformers.Owlv2ForObjectDetection,
                    transformers.Owlv2Processor,
                )
            else:
                model_class, processor_class = (
                    transformers.CLIPSegForImageSegmentation,
                    transformers.CLIPSegProcessor,
                )
            try:
                # Local files only: weights that are not a folder or in the cache fail at once, not after
                # minutes of hub retries (download once with `hf download`, see `missing_model_message`).
                processor = processor_class.from_pretrained(model, local_files_only=True)
                network = model_class.from_pretrained(model, local_files_only=True).to(device).eval()
            except (OSError, ValueError) as error:
                setting = f"{kind}_model"
                raise ModelUnavailableError(
                    missing_model_message(model, setting, str(error).splitlines()[0])
                ) from None
            _MODELS[key] = (network, processor)
        return _MODELS[key]


def clear_models() -> None:
    """Forget every cached grounding model."""
    with _LOCK:
        _MODELS.clear()


class Detection(TypedDict):
    """One detected box, in pixels (left, top, right, bottom) of the image."""

    box: tuple[int, int, int, int]
    score: float


def detect(
    image: Image.Image, description: str, settings: GroundingSettings, *, min_score: float, max_regions: int
) -> list[Detection]:
    """Boxes matching `description`, best first, at least `min_score`, overlapping ones suppressed."""
    import torch

    network, processor = load_model(settings.detector_model, "detector", settings.device)
    inputs = processor(text=[[description]], images=image, return_tensors="pt").to(network.device)
    with torch.inference_mode():
        outputs = network(**inputs)
    # OWLv2 pads the image to a square at the bottom and right: boxes scale by the longer side.
    side = max(image.size)
    result = processor.post_process_grounded_object_detection(
        outputs, threshold=min_score, target_sizes=[(side, side)]
    )[0]
    order = torch.argsort(result["scores"], descending=True)
    detections: list[Detection] = []
    for index in order.tolist():
        box = _pixel_box(result["boxes"][index].tolist(), image.size)
        if any(_iou(box, kept["box"]) > 0.5 for kept in detections):
            continue
        detections.append(Detection(box=box, score=round(float(result["scores"][index]), 4)))
        if len(detections) == max_regions:
            break
    return detections


def segment(image: Image.Image, description: str, settings: GroundingSettings) -> np.ndarray:
    """Per-pixel probability (H x W, 0..1) that a pixel shows `description`."""
    import torch

    network, processor = load_model(settings.segmenter_model, "segmenter", settings.device)
    inputs = processor(text=[description], images=[image], padding=True, return_tensors="pt").to(
        network.device
    )
    with torch.inference_mode():
        logits = network(**inputs).logits
    probability = torch.sigmoid(logits.float()).reshape(logits.shape[-2:]).cpu().numpy()
    resized = Image.fromarray(probability.astype(np.float32)).resize(image.size, Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized), 0.0, 1.0)


def _pixel_box(box: list[float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A model's box clipped to the image, at least one pixel wide and high."""
    width, height = size
    left = int(np.clip(np.floor(box[0]), 0, width - 1))
    top = int(np.clip(np.floor(box[1]), 0, height - 1))
    right = int(np.clip(np.ceil(box[2]), left + 1, width))
    bottom = int(np.clip(np.ceil(box[3]), top + 1, height))
    return left, top, right, bottom


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    width = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union else 0.0


# ---------------------------------------------------------------------------------------------- catalog


def find_boxes(
    image: Image.Image, description: str, settings: GroundingSettings, *, min_score: float, max_regions: int
) -> list[dict[str, Any]]:
    """`detect`'s boxes as regions for `append_regions`: normalized box, the description as label, score."""
    return [
        {"box": pixels_to_box(*item["box"], image.size), "label": description, "score": item["score"]}
        for item in detect(image, description, settings, min_score=min_score, max_regions=max_regions)
    ]


def append_regions(catalog: RegionCatalog, regions: list[dict[str, Any]]) -> list[CatalogRegion]:
    """Append object regions (box, label, score, optional mask) to `catalog` under new ids ``rN`` (after the
    highest one it has); returns the added entries."""
    numbers = [int(entry["id"][1:]) for entry in catalog["regions"] if entry["id"][1:].isdigit()]
    next_number = max(numbers, default=0) + 1
    added: list[CatalogRegion] = []
    for region in regions:
        entry = CatalogRegion(id=f"r{next_number}", box=region["box"], kind="object", label=region["label"])
        entry["score"] = region["score"]
        if "mask" in region:
            entry["mask"] = region["mask"]
        added.append(entry)
        next_number += 1
    catalog["regions"].extend(added)
    return added


def add_regions(store: ImageStore, image_id: str, regions: list[dict[str, Any]]) -> list[CatalogRegion]:
    """Add object regions (box, label, score, optional mask) to the image's stored catalog under new ids ``rN``.

    The catalog is the one `load_catalog` finds (the image's or its nearest ancestor's); an image without one
    gets a new catalog. Returns the added entries.
    """
    image = store.ref(image_id)
    catalog: RegionCatalog = load_catalog(store, image_id) or RegionCatalog(
        image_id=image_id, width=image["width"], height=image["height"], regions=[]
    )
    added = append_regions(catalog, regions)
    save_catalog(store, catalog)
    return added


def _describe(entries: list[CatalogRegion]) -> str:
    return "; ".join(
        f"{entry['id']} {entry['label']!r} box [{', '.join(f'{v:.2f}' for v in entry['box'])}] "
        f"score {entry.get('score', 0):.2f}" + (" (mask)" if "mask" in entry else "")
        for entry in entries
    )


# ---------------------------------------------------------------------------------------------- tools


@tool(parse_docstring=True, response_format="content_and_artifact")
def find_region(
    image_id: str,
    description: Description,
    max_regions: Annotated[int, Field(ge=1, le=10)] = 3,
    min_score: Score = 0.1,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Find objects by description (open-vocabulary detection) and add their boxes to the region catalog.

    The image is not changed. Use the returned region ids as the `region` of an editing tool.

    Args:
        image_id: Id of the image to search.
        description: What to find, in a few words, e.g. 'the bottle' or 'a red logo'.
        max_regions: At most this many regions, best first.
        min_score: Smallest detection confidence (0..1) to keep.
    """
    store = store_from_config(config)
    image = load_for_edit(store, image_id)
    settings = settings_from_config(config, "grounding", GroundingSettings)
    found = find_boxes(image, description, settings, min_score=min_score, max_regions=max_regions)
    if not found:
        raise ToolException(
            f"nothing matching {description!r} was found with confidence >= {min_score}; "
            "describe it differently or lower min_score"
        )
    added = add_regions(store, image_id, found)
    return f"found {len(added)} region(s) for {description!r}: {_describe(added)}", store.ref(image_id)


@tool(parse_docstring=True, response_format="content_and_artifact")
def segment_region(
    image_id: str,
    description: Description,
    threshold: Score = 0.4,
    config: RunnableConfig = None,
) -> tuple[str, ImageRef]:
    """Segment the pixels showing a description (open-vocabulary segmentation) and add them as one masked region.

    The image is not changed. Use the returned region id as the `region` of an editing tool for a precise outline.

    Args:
        image_id: Id of the image to search.
        description: What to segment, in a few words, e.g. 'the sky' or 'the coffee cup'.
        threshold: Probability (0..1) above which a pixel belongs to the region.
    """
    store = store_from_config(config)
    image = load_for_edit(store, image_id)
    probability = segment(image, description, settings_from_config(config, "grounding", GroundingSettings))
    inside = probability > threshold
    if not inside.any():
        raise ToolException(
            f"nothing matching {description!r} was segmented above threshold {threshold} "
            f"(highest probability {probability.max():.2f}); describe it differently or lower the threshold"
        )
    mask_ref = store.put(
        Image.fromarray(inside.astype(np.uint8) * 255), parent=image_id, tool="segment_region"
    )
    ys, xs = np.nonzero(inside)
    box = pixels_to_box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, image.size)
    added = add_regions(
        store,
        image_id,
        [
            {
                "box": box,
                "label": description,
                "score": round(float(probability[inside].mean()), 4),
                "mask": mask_ref["id"],
            }
        ],
    )
    return f"segmented {description!r}: {_describe(added)}", store.ref(image_id)


#: The grounding tools, in the order a model sees them. Not part of `pixplan.tools.TOOLS`, which stays offline.
GROUNDING_TOOLS = forbid_unknown_arguments([find_region, segment_region])

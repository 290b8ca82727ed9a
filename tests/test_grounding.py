"""Grounding tools with real OWLv2 and CLIPSeg classes, tiny random weights built from configs (no download)."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.tools import ToolException
from PIL import Image

from pixplan.tools import blur
from pixplan.tools.grounding import GROUNDING_TOOLS, clear_models, find_region, segment_region
from pixplan.tools.regions import load_catalog, region_mask, save_catalog

pytest.importorskip("transformers")

from tiny_models import save_grounding_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny OWLv2 and CLIPSeg saved as local folders, loaded by path like real ones."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield save_grounding_models(tmp_path_factory.mktemp("grounding"))
    clear_models()
    torch.set_num_threads(threads)


@pytest.fixture
def config(tool_config, models):
    return {"configurable": {**tool_config["configurable"], "grounding": models}}


@pytest.fixture
def photo(store):
    rng = np.random.default_rng(1)
    return store.put(Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)))


def call(tool, config, **args):
    message = tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": tool.name, "args": args}, config=config
    )
    return message.content, message.artifact


def test_find_region_starts_a_catalog_and_leaves_the_image_unchanged(store, photo, config):
    content, ref = call(find_region, config, image_id=photo["id"], description="the bottle", min_score=0.0)
    assert ref == store.ref(photo["id"])  # the image itself is unchanged
    catalog = load_catalog(store, photo["id"])
    assert catalog is not None and catalog["image_id"] == photo["id"]
    regions = catalog["regions"]
    assert 1 <= len(regions) <= 3
    assert [entry["id"] for entry in regions] == [f"r{n}" for n in range(1, len(regions) + 1)]
    for entry in regions:
        assert entry["id"] in content
        assert entry["kind"] == "object" and entry["label"] == "the bottle" and 0 <= entry["score"] <= 1
        x0, y0, x1, y1 = entry["box"]
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_found_regions_extend_an_existing_catalog_and_work_as_edit_regions(store, photo, config):
    save_catalog(
        store,
        {
            "image_id": photo["id"],
            "width": 96,
            "height": 80,
            "regions": [
                {"id": "r1", "box": [0.1, 0.1, 0.4, 0.2], "kind": "text", "label": "text", "text": "SALE"},
                {"id": "r2", "box": [0.5, 0.5, 0.9, 0.9], "kind": "object", "label": "product"},
                {"id": "whole", "box": [0.0, 0.0, 1.0, 1.0], "kind": "whole", "label": "whole image"},
            ],
        },
    )
    call(find_region, config, image_id=photo["id"], description="a logo", max_regions=1, min_score=0.0)
    regions = load_catalog(store, photo["id"])["regions"]
    assert [entry["id"] for entry in regions] == ["r1", "r2", "whole", "r3"]
    # The new id is a region every editing tool understands.
    _, edited = call(blur, config, image_id=photo["id"], region="r3", radius=3.0)
    mask = region_mask("r3", (96, 80), catalog=load_catalog(store, photo["id"]), store=store)
    before, after = np.asarray(store.get(photo["id"])), np.asarray(store.get(edited["id"]))
    far = np.ones_like(mask, dtype=bool)
    ys, xs = np.nonzero(mask)
    far[max(ys.min() - 4, 0) : ys.max() + 5, max(xs.min() - 4, 0) : xs.max() + 5] = False
    np.testing.assert_array_equal(after[far], before[far])


def test_segment_region_stores_a_mask_region(store, photo, config):
    content, ref = call(segment_region, config, image_id=photo["id"], description="the sky", threshold=0.0)
    assert ref["id"] == photo["id"]
    (entry,) = load_catalog(store, photo["id"])["regions"]
    assert entry["id"] == "r1" and entry["id"] in content and entry["label"] == "the sky" and "mask" in entry
    mask = np.asarray(store.get(entry["mask"]))
    assert mask.shape == (80, 96) and set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(
        region_mask("r1", (96, 80), catalog=load_catalog(store, photo["id"]), store=store), mask / 255
    )


def test_nothing_found_is_a_clear_error(store, photo, config):
    with pytest.raises(ToolException, match=r"nothing matching 'a unicorn'.*min_score"):
        call(find_region, config, image_id=photo["id"], description="a unicorn", min_score=1.0)
    with pytest.raises(ToolException, match=r"nothing matching 'a unicorn'.*threshold"):
        call(segment_region, config, image_id=photo["id"], description="a unicorn", threshold=1.0)
    assert load_catalog(store, photo["id"]) is None


def test_missing_grounding_model_is_a_clear_error(store, photo, tool_config):
    config = {
        "configurable": {**tool_config["configurable"], "grounding": {"detector_model": "/nonexistent/owlv2"}}
    }
    with pytest.raises(
        ToolException, match=r"'/nonexistent/owlv2' could not be loaded.*HF_HOME.*detector_model"
    ):
        call(find_region, config, image_id=photo["id"], description="the bottle")


def test_grounding_tools_show_the_model_only_its_arguments():
    for grounding_tool in GROUNDING_TOOLS:
        fields = set(grounding_tool.tool_call_schema.model_json_schema()["properties"])
        assert {"image_id", "description"} <= fields and "config" not in fields


def test_build_catalog_adds_detections_where_a_detector_is_configured(store, models, make_ad):
    """Perception with OWLv2: each query's boxes join the catalog as objects, and 'background' excludes them."""
    from pixplan.tools.grounding import GroundingSettings
    from pixplan.tools.perception import build_catalog, describe_catalog
    from pixplan.tools.regions import text_mask

    image, _ = make_ad(size=(400, 400))
    image_id = store.put(image)["id"]
    catalog = build_catalog(
        store,
        image_id,
        detect=["the cup", "a logo"],
        grounding=GroundingSettings(**models),
        detect_min_score=0.0,
        detect_max_regions=2,
    )
    assert load_catalog(store, image_id) == catalog
    regions = catalog["regions"]
    kinds = [entry["kind"] for entry in regions]
    assert kinds == ["text", "text", "object", "object", "object", "object", "object", "background", "whole"]
    assert [entry["id"] for entry in regions[:-2]] == [f"r{n}" for n in range(1, 8)]
    detected = regions[3:7]
    assert [entry["label"] for entry in detected] == ["the cup", "the cup", "a logo", "a logo"]
    for entry in detected:
        assert 0.0 <= entry["score"] <= 1.0 and "mask" not in entry
        assert f"- {entry['id']} (object): {entry['label']} box" in describe_catalog(catalog)
    background = region_mask("background", image.size, catalog=catalog, store=store)
    kept = text_mask(regions, image.size, np.asarray(image))
    for entry in regions[2:7]:
        kept = np.maximum(kept, region_mask(entry["id"], image.size, catalog=catalog, store=store))
    np.testing.assert_array_equal(background, 1.0 - kept)

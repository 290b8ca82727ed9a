"""Generative tools with real diffusers pipeline classes on tiny random components (64 px, 1-2 steps, no download)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest
from langchain_core.tools import ToolException
from PIL import Image

from pixplan.tools.generative import (
    GENERATIVE_TOOLS,
    GenerativeSettings,
    clear_pipelines,
    edit_by_instruction,
    generate_background,
    inpaint_region,
    load_pipeline,
)
from pixplan.tools.regions import region_mask, save_catalog

pytest.importorskip("diffusers")

import tiny_models


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine two threads spin-wait (10x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def gpu_check():
    return tiny_models.gpu_check()


@pytest.fixture(scope="module")
def tiny_inpaint(gpu_check):
    return gpu_check.build_pipeline("sd-inpaint", tiny=True)


@pytest.fixture(scope="module")
def tiny_pix2pix(gpu_check):
    return gpu_check.build_pipeline("instruct-pix2pix", tiny=True)


@pytest.fixture
def photo(store):
    """A 96x80 test image with structure and noise (so any change shows)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:80, 0:96]
    pixels = np.stack([x * 2.5, y * 3.0, (x + y) * 1.4], axis=-1) + rng.normal(0, 8, (80, 96, 3))
    return store.put(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))


def call(tool, config, **args):
    """Invoke a tool as an agent would (a tool call) and return (content, artifact)."""
    message = tool.invoke(
        {"type": "tool_call", "id": "call-1", "name": tool.name, "args": args}, config=config
    )
    return message.content, message.artifact


def settings_config(tool_config, **settings):
    return {
        "configurable": {
            **tool_config["configurable"],
            "generative": GenerativeSettings(device="cpu", **settings),
        }
    }


def outside(store, image_id, region, grow=4):
    """Pixels beyond the region grown by `grow` (more than the feather reaches)."""
    size = store.get(image_id).size
    mask = region_mask(region, size)
    kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
    return cv2.dilate(mask, kernel) == 0


def test_inpaint_changes_the_region_and_nothing_beyond_its_feather(store, photo, tool_config, tiny_inpaint):
    config = settings_config(tool_config, inpaint_pipeline=tiny_inpaint)
    region = [0.3, 0.25, 0.7, 0.75]
    content, ref = call(
        inpaint_region,
        config,
        image_id=photo["id"],
        region=region,
        prompt="a red apple",
        num_inference_steps=2,
    )
    assert ref["id"] in content and ref["parent"] == photo["id"] and ref["tool"] == "inpaint_region"
    before, after = np.asarray(store.get(photo["id"])), np.asarray(store.get(ref["id"]))
    assert after.shape == before.shape == (80, 96, 3)
    keep = outside(store, photo["id"], region)
    np.testing.assert_array_equal(after[keep], before[keep])
    inside = region_mask(region, (96, 80), store=store) > 0
    assert np.abs(after[inside].astype(int) - before[inside]).mean() > 10
    assert ref["args"]["prompt"] == "a red apple" and ref["args"]["seed"] == 0


def test_same_seed_same_image_other_seed_other_image(store, photo, tool_config, tiny_inpaint):
    config = settings_config(tool_config, inpaint_pipeline=tiny_inpaint)
    args = {
        "image_id": photo["id"],
        "region": [0.1, 0.1, 0.5, 0.6],
        "prompt": "moss",
        "num_inference_steps": 2,
    }
    first = call(inpaint_region, config, **args, seed=7)[1]
    again = call(inpaint_region, config, **args, seed=7)[1]
    other = call(inpaint_region, config, **args, seed=8)[1]
    assert first["id"] == again["id"]
    assert first["id"] != other["id"]


def test_edit_by_instruction_in_a_box(store, photo, tool_config, tiny_pix2pix):
    config = settings_config(tool_config, edit_pipeline=tiny_pix2pix)
    region = [0.5, 0.0, 1.0, 0.5]
    _, ref = call(
        edit_by_instruction,
        config,
        image_id=photo["id"],
        region=region,
        prompt="make it snowy",
        num_inference_steps=2,
    )
    before, after = np.asarray(store.get(photo["id"])), np.asarray(store.get(ref["id"]))
    keep = outside(store, photo["id"], region)
    np.testing.assert_array_equal(after[keep], before[keep])
    assert not np.array_equal(after[~keep], before[~keep])


def test_generate_background_keeps_the_foreground_object(store, photo, tool_config, tiny_inpaint):
    product = [0.35, 0.3, 0.65, 0.8]
    save_catalog(
        store,
        {
            "image_id": photo["id"],
            "width": 96,
            "height": 80,
            "regions": [{"id": "r1", "box": product, "kind": "object", "label": "bottle"}],
        },
    )
    config = settings_config(tool_config, inpaint_pipeline=tiny_inpaint)
    _, ref = call(generate_background, config, image_id=photo["id"], prompt="a forest", num_inference_steps=1)
    before, after = np.asarray(store.get(photo["id"])), np.asarray(store.get(ref["id"]))
    # Shrink the object by more than the feather: its inside must be untouched, the background repainted.
    left, top, right, bottom = 34 + 4, 24 + 4, 63 - 4, 64 - 4
    np.testing.assert_array_equal(after[top:bottom, left:right], before[top:bottom, left:right])
    assert np.abs(after[:, :20].astype(int) - before[:, :20]).mean() > 10


def test_pipeline_loads_from_a_local_folder_with_the_class_from_its_config(
    tmp_path, gpu_check, store, photo, tool_config
):
    folder = tmp_path / "tiny-sdxl"
    gpu_check.build_pipeline("sdxl-inpaint", tiny=True).save_pretrained(folder)
    settings = GenerativeSettings(inpaint_model=str(folder), device="cpu", dtype="float32")
    clear_pipelines()
    pipe = load_pipeline(str(folder), "inpaint", settings)
    assert type(pipe).__name__ == "StableDiffusionXLInpaintPipeline"
    assert load_pipeline(str(folder), "inpaint", settings) is pipe  # cached per process
    config = {
        "configurable": {
            **tool_config["configurable"],
            "generative": {"inpaint_model": str(folder), "device": "cpu"},
        }
    }
    _, ref = call(
        inpaint_region, config, image_id=photo["id"], region="whole", prompt="a beach", num_inference_steps=1
    )
    assert (ref["width"], ref["height"]) == (96, 80)
    clear_pipelines()


@pytest.mark.parametrize("model", ["someone/missing-inpaint-model", "/nonexistent/inpaint-folder"])
def test_missing_model_is_a_clear_error(store, photo, tool_config, model):
    config = {"configurable": {**tool_config["configurable"], "generative": {"inpaint_model": model}}}
    with pytest.raises(ToolException) as error:
        call(inpaint_region, config, image_id=photo["id"], region="whole", prompt="a beach")
    message = str(error.value)
    assert model in message and "could not be loaded" in message
    assert "HF_HOME" in message and "HF_HUB_OFFLINE" in message and "inpaint_model" in message


def test_bad_arguments_are_tool_errors(store, photo, tool_config, tiny_inpaint):
    config = settings_config(tool_config, inpaint_pipeline=tiny_inpaint)
    with pytest.raises(ToolException, match="no denoising step"):
        call(
            inpaint_region,
            config,
            image_id=photo["id"],
            region="whole",
            prompt="x",
            strength=0.01,
            num_inference_steps=5,
        )
    with pytest.raises(ToolException, match="unknown image_id"):
        call(inpaint_region, config, image_id="nope", region="whole", prompt="x")
    with pytest.raises(ToolException, match="box"):
        call(inpaint_region, config, image_id=photo["id"], region=[0.5, 0.5, 0.2, 0.9], prompt="x")


def test_tool_schemas_hide_settings_from_the_model():
    for generative_tool in GENERATIVE_TOOLS:
        fields = set(generative_tool.tool_call_schema.model_json_schema()["properties"])
        assert {"image_id", "region", "prompt", "seed", "num_inference_steps"} <= fields
        assert not fields & {"config", "device", "dtype", "model", "inpaint_model", "cpu_offload"}


def test_importing_the_tool_library_loads_no_torch():
    code = (
        "import sys, pixplan.tools, pixplan.tools.generative, pixplan.tools.grounding;"
        "names = [tool.name for tool in pixplan.tools.GENERATIVE_TOOLS + pixplan.tools.GROUNDING_TOOLS];"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules];"
        "print(names, heavy); assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "inpaint_region" in result.stdout and "find_region" in result.stdout


def test_gpu_check_runs_at_tiny_size_on_cpu(gpu_check):
    rows = gpu_check.main(["--tiny", "--device", "cpu", "--steps", "2", "--kinds", "sd-inpaint"])
    assert rows[0]["size"] == 64 and rows[0]["steps"] == 2 and rows[0]["sec_per_step"] > 0

"""`pixplan tools`, `pixplan tools run`, `pixplan tools demo` and `pixplan catalog`, run in-process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from pixplan.tools import GENERATIVE_TOOLS, GROUNDING_TOOLS, TOOLS
from pixplan.tools.cli import EXAMPLE
from pixplan.tools.examples import resolve_region
from pixplan.training.cli import main


@pytest.fixture
def small_ad(tmp_path):
    """The bundled example ad at half size (faster OCR), as a file."""
    path = tmp_path / "ad.png"
    with Image.open(EXAMPLE) as image:
        image.convert("RGB").resize((384, 384), Image.Resampling.LANCZOS).save(path)
    return path


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One store for the tests that need the example's catalog: perception (OCR) runs once, not per test."""
    return tmp_path_factory.mktemp("store")


def test_list_tools(capsys):
    assert main(["tools"]) == 0
    out = capsys.readouterr().out
    for tool in TOOLS:
        assert f"\n{tool.name}: " in out
    assert "hue_shift (number >=-180.0 <=180.0; default 0.0)" in out
    assert 'style ("warm" | "cool" | "vintage" | "mono" | "posterize"; required)' in out


def test_run_a_tool_on_a_file(small_ad, tmp_path, capsys):
    output = tmp_path / "out" / "green.png"
    box = "[0.25, 0.15, 0.75, 0.5]"
    code = main(
        [
            *(
                "tools",
                "run",
                "recolor",
                str(small_ad),
                "--region",
                box,
                "--args",
                '{"color": "forestgreen"}',
            ),
            *("-o", str(output), "--store", str(tmp_path / "store")),
        ]
    )
    assert code == 0
    assert "recolor applied to" in capsys.readouterr().out
    before, after = np.asarray(Image.open(small_ad)).astype(int), np.asarray(Image.open(output)).astype(int)
    inside = (slice(70, 180), slice(110, 270))
    assert (after[inside][..., 1] - after[inside][..., 0]).mean() > (
        before[inside][..., 1] - before[inside][..., 0]
    ).mean() + 30
    assert np.array_equal(after[250:, :], before[250:, :])


def test_run_with_a_catalog_region(small_ad, tmp_path, shared_store, capsys):
    output = tmp_path / "bg.png"
    code = main(
        [
            *("tools", "run", "replace_background", str(small_ad), "--region", "background"),
            *("--args", '{"color": "#ffffff"}', "-o", str(output), "--store", str(shared_store)),
        ]
    )
    assert code == 0, capsys.readouterr().err
    after = np.asarray(Image.open(output))
    assert (after[:10, :10] == 255).all()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["tools", "run", "paint", "IMAGE"], "unknown tool 'paint'"),
        (["tools", "run", "blur", "IMAGE", "--args", "{radius: 3}"], "must be valid JSON"),
        (["tools", "run", "blur", "IMAGE", "--args", "[3]"], "must be a JSON object"),
        (["tools", "run", "blur", "IMAGE", "--region", "r42"], "unknown region id 'r42'"),
        (["tools", "run", "recolor", "IMAGE", "--args", '{"color": "blurple"}'], "unknown colour"),
        (["tools", "run", "blur", "IMAGE", "--args", '{"radius": -1}'], "radius"),
        (["tools", "run", "blur", "MISSING"], "no such image file"),
    ],
)
def test_run_errors_are_short_and_clear(small_ad, tmp_path, shared_store, capsys, arguments, message):
    arguments = [
        str(small_ad) if part == "IMAGE" else str(tmp_path / "missing.png") if part == "MISSING" else part
        for part in arguments
    ]
    code = main([*arguments, "-o", str(tmp_path / "x.png"), "--store", str(shared_store)])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_catalog_command(small_ad, shared_store, capsys):
    assert main(["catalog", str(small_ad), "--json", "--store", str(shared_store)]) == 0
    catalog = json.loads(capsys.readouterr().out)
    kinds = {entry["kind"] for entry in catalog["regions"]}
    assert {"text", "object", "whole"} <= kinds
    assert any("BLEND" in entry.get("text", "") for entry in catalog["regions"])
    assert main(["catalog", str(small_ad), "--store", str(shared_store)]) == 0
    assert "(text)" in capsys.readouterr().out


def test_demo_writes_one_image_per_tool_and_a_contact_sheet(small_ad, tmp_path, capsys):
    output = tmp_path / "demo"
    assert main(["tools", "demo", "-o", str(output), "--image", str(small_ad)]) == 0
    written = sorted(path.name for path in output.glob("*.png"))
    assert len(written) == len(TOOLS) + 2  # original, one per tool, contact sheet
    assert "contact_sheet.png" in written
    original = np.asarray(Image.open(output / "00_original.png"))
    for number, tool in enumerate(TOOLS, start=1):
        result = np.asarray(Image.open(output / f"{number:02d}_{tool.name}.png"))
        assert result.shape == original.shape and not np.array_equal(result, original), tool.name
    out = capsys.readouterr().out
    assert "contact_sheet.png" in out and "replace_text" in out


def test_resolve_region():
    catalog = {
        "regions": [
            {"id": "r1", "kind": "text"},
            {"id": "r2", "kind": "text"},
            {"id": "r3", "kind": "object"},
        ]
    }
    assert resolve_region("@text", catalog) == "r1"
    assert resolve_region("@text#2", catalog) == "r2"
    assert resolve_region("@object", catalog) == "r3"
    assert resolve_region("background", catalog) == "background"
    assert resolve_region([0, 0, 1, 1], catalog) == [0, 0, 1, 1]


def test_catalog_command_with_a_detector(small_ad, tmp_path, capsys):
    pytest.importorskip("transformers")
    from tiny_models import save_grounding_models

    from pixplan.tools.grounding import clear_models

    store = str(tmp_path / "store")
    missing = ["catalog", str(small_ad), "--detect", "the cup", "--detector-model", str(tmp_path / "none")]
    assert main([*missing, "--store", store]) == 2
    assert "could not be loaded" in capsys.readouterr().err
    models = save_grounding_models(tmp_path / "models")
    try:
        arguments = ["catalog", str(small_ad), "--json", "--store", store]
        assert main([*arguments, "--detect", "the cup", "--detector-model", models["detector_model"]]) == 0
    finally:
        clear_models()
    catalog = json.loads(capsys.readouterr().out)
    labels = [entry["label"] for entry in catalog["regions"]]
    assert "the cup" in labels and labels[-2:] == ["background", "whole image"]


def test_list_generative_and_grounding_tools_without_loading_torch():
    code = (
        "import sys\n"
        "from pixplan.training.cli import main\n"
        "assert main(['tools', '--all']) == 0\n"
        "heavy = [name for name in ('torch', 'diffusers', 'transformers') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for tool in [*TOOLS, *GENERATIVE_TOOLS, *GROUNDING_TOOLS]:
        assert f"\n{tool.name}: " in out, tool.name
    assert "inpaint_region" in out and "find_region" in out
    assert "description (string; required)" in out  # a grounding tool's own argument


@pytest.mark.parametrize(
    ("flag", "shown", "hidden"),
    [
        ([], [], ["GENERATIVE", "GROUNDING"]),
        (["--generative"], ["GENERATIVE"], ["GROUNDING"]),
        (["--grounding"], ["GROUNDING"], ["GENERATIVE"]),
        (["--generative", "--grounding"], ["GENERATIVE", "GROUNDING"], []),
    ],
)
def test_list_tools_flags(capsys, flag, shown, hidden):
    lists = {"GENERATIVE": GENERATIVE_TOOLS, "GROUNDING": GROUNDING_TOOLS}
    assert main(["tools", *flag]) == 0
    out = capsys.readouterr().out
    for name in shown:
        assert all(f"\n{tool.name}: " in out for tool in lists[name]), name
    for name in hidden:
        assert not any(f"\n{tool.name}: " in out for tool in lists[name]), name

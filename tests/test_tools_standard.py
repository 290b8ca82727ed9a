"""LangChain's standard tool tests (`langchain-tests` ToolsUnitTests) for every tool in `pixplan.tools.TOOLS`.

One test class per tool is generated below, so a failure names the tool. Each class gives the standard tests the
tool instance and an example call that its input schema must accept.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from pixplan.tools import TOOLS
from pixplan.tools.examples import EXAMPLE_CALLS, example_call

#: A catalog for the examples' '@kind' regions (the standard tests check the input schema only).
CATALOG = {
    "regions": [{"id": "r1", "kind": "text"}, {"id": "r2", "kind": "text"}, {"id": "r3", "kind": "object"}]
}


def _standard_test_class(tool: BaseTool) -> type[ToolsUnitTests]:
    class StandardTests(ToolsUnitTests):
        @property
        def tool_constructor(self) -> BaseTool:
            return tool

        @property
        def tool_invoke_params_example(self) -> dict[str, Any]:
            return {"image_id": "0123456789abcdef01234567", **example_call(tool.name, CATALOG)}

    name = "Test" + "".join(part.title() for part in tool.name.split("_")) + "Standard"
    StandardTests.__name__ = StandardTests.__qualname__ = name
    return StandardTests


for _tool in TOOLS:
    _class = _standard_test_class(_tool)
    globals()[_class.__name__] = _class


# ------------------------------------------------------------------------------------------------ pixplan's own rules


def test_every_tool_has_an_example():
    assert sorted(EXAMPLE_CALLS) == sorted(tool.name for tool in TOOLS)


def test_at_least_ten_tools_with_unique_names():
    names = [tool.name for tool in TOOLS]
    assert len(names) >= 10 and len(set(names)) == len(names)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda tool: tool.name)
def test_tool_conventions(tool):
    schema = tool.tool_call_schema.model_json_schema()
    properties = schema["properties"]
    assert tool.response_format == "content_and_artifact"
    assert "image_id" in properties and "region" in properties, "every tool takes an image and a region"
    assert "config" not in properties, "the store comes from the injected RunnableConfig, not from the model"
    assert "image_id" in schema["required"]
    for name, spec in properties.items():
        assert spec.get("description"), f"{tool.name}.{name} has no description for the model"
    assert len(tool.description) > 40


def test_importing_tools_loads_no_torch_or_diffusers():
    code = (
        "import sys, pixplan.tools\n"
        "heavy = [name for name in ('torch', 'diffusers', 'transformers') if name in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert len(pixplan.tools.TOOLS) >= 10\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)

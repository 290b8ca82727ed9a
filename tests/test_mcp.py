"""`pixplan mcp` with the official MCP client (stdio and streamable HTTP) and langchain-mcp-adapters in an agent."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
from graph_fakes import ScriptedChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from PIL import Image, ImageDraw, ImageFont

from pixplan.tools import TOOLS
from pixplan.tools.generative import GENERATIVE_TOOLS
from pixplan.tools.grounding import GROUNDING_TOOLS
from pixplan.tools.mcp_server import IMAGE_ARGUMENT

pytest.importorskip("mcp")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

BOX = [0.25, 0.25, 0.75, 0.75]


def gray_png(size=(64, 48), value=128) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def server_command(store, *flags: str) -> list[str]:
    """The server, allowed to read the test's folder (where the store and the test images are)."""
    command = [sys.executable, "-m", "pixplan.training.cli", "mcp", "--store", str(store.root)]
    return [*command, "--allow-dir", str(store.root.parent), *flags]


@asynccontextmanager
async def stdio_session(store, *flags: str):
    """A client session with `pixplan mcp` started as a subprocess over stdin/stdout (unix pipes)."""
    command = server_command(store, *flags)
    # The SDK passes only a minimal environment by default; the server needs the test's (offline flags, paths).
    parameters = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with stdio_client(parameters) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def decode_image(result) -> np.ndarray:
    (image,) = [block for block in result.content if block.type == "image"]
    assert image.mimeType == "image/png"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(image.data))).convert("RGB"))


def text_of(result) -> str:
    return " ".join(block.text for block in result.content if block.type == "text")


def test_lists_and_calls_tools_and_answers_bad_arguments_with_errors(store, tmp_path):
    path = tmp_path / "gray.png"
    path.write_bytes(gray_png())

    async def scenario():
        async with stdio_session(store, "--generative", "--grounding") as session:
            listed = {tool.name: tool for tool in (await session.list_tools()).tools}
            image = "data:image/png;base64," + base64.b64encode(gray_png()).decode()
            painted = await session.call_tool(
                "replace_background", {"image_id": image, "region": BOX, "fill": "solid", "color": "#ff0000"}
            )
            catalog = await session.call_tool("region_catalog", {"image_id": str(path)})
            errors = [
                await session.call_tool("blur", {"image_id": str(path), "region": [0.5, 0.5, 0.2, 0.9]}),
                await session.call_tool("blur", {"image_id": "no-such-image", "region": "whole"}),
                await session.call_tool("blur", {"region": "whole"}),
                await session.call_tool("recolor", {"image_id": str(path), "region": "r7", "color": "red"}),
                await session.call_tool("no_such_tool", {}),
                await session.call_tool(
                    "import_image", {"source": base64.b64encode(b"not an image").decode()}
                ),
            ]
            return listed, painted, catalog, errors

    listed, painted, catalog, errors = asyncio.run(scenario())

    expected = {t.name for t in [*TOOLS, *GENERATIVE_TOOLS, *GROUNDING_TOOLS]}
    assert expected | {"import_image", "region_catalog"} == set(listed)
    for name in expected:
        schema = listed[name].inputSchema
        assert schema["properties"]["image_id"]["description"] == IMAGE_ARGUMENT
        assert "config" not in schema["properties"]

    assert not painted.isError, text_of(painted)
    ref = painted.structuredContent
    assert ref["id"] in text_of(painted) and ref["tool"] == "replace_background" and ref["parent"] in store
    pixels = decode_image(painted)
    np.testing.assert_array_equal(pixels, np.asarray(store.get(ref["id"])))
    assert tuple(pixels[24, 32]) == (255, 0, 0)  # inside the box: painted
    assert tuple(pixels[2, 2]) == (128, 128, 128)  # far outside: unchanged

    assert not catalog.isError, text_of(catalog)
    assert "whole: the whole image" in text_of(catalog)

    box, image, missing, region, tool, data = errors
    assert all(result.isError for result in errors)
    assert "box is empty or inverted" in text_of(box)
    assert "unknown image 'no-such-image'" in text_of(image)
    assert "image_id" in text_of(missing) and "required" in text_of(missing)
    assert "unknown region id 'r7'" in text_of(region)
    assert "unknown tool 'no_such_tool'" in text_of(tool)
    assert "unknown image" in text_of(data)


def test_langgraph_agent_edits_an_image_through_mcp_tools(store, tmp_path):
    from langchain.agents import create_agent
    from langchain_mcp_adapters.tools import load_mcp_tools

    path = tmp_path / "photo.png"
    path.write_bytes(gray_png(value=100))
    model = ScriptedChatModel(
        responses=[
            AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "replace_background",
                        "args": {"image_id": str(path), "region": BOX, "fill": "solid", "color": "#00ff00"},
                        "id": "call-1",
                    }
                ],
            ),
            AIMessage(content="The centre is green now."),
        ]
    )

    async def scenario():
        async with stdio_session(store) as session:
            tools = await load_mcp_tools(session)
            agent = create_agent(model, tools=tools)
            return await agent.ainvoke({"messages": [HumanMessage("Paint the centre green.")]})

    state = asyncio.run(scenario())
    (message,) = [m for m in state["messages"] if isinstance(m, ToolMessage)]
    assert message.status == "success", message.content
    text = " ".join(block["text"] for block in message.content if block["type"] == "text")
    edited_id = re.search(r"new image_id (\w+)", text).group(1)
    assert message.artifact["structured_content"]["id"] == edited_id
    pixels = np.asarray(store.get(edited_id))
    assert tuple(pixels[24, 32]) == (0, 255, 0)
    assert tuple(pixels[2, 2]) == (100, 100, 100)
    assert state["messages"][-1].content == "The centre is green now."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# Streamable HTTP needs a TCP socket; the server binds 127.0.0.1 only and the client talks to nothing else.
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
@pytest.mark.network_local
def test_streamable_http_on_localhost(store):
    from mcp.client.streamable_http import streamable_http_client

    port = free_port()
    server = subprocess.Popen(
        [*server_command(store, "--http", "--port", str(port))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the MCP server did not start listening"
                time.sleep(0.2)

        async def scenario():
            async with (
                streamable_http_client(f"http://127.0.0.1:{port}/mcp/") as (read, write, _),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                names = {tool.name for tool in (await session.list_tools()).tools}
                image = base64.b64encode(gray_png()).decode()
                return names, await session.call_tool(
                    "blur", {"image_id": image, "region": "whole", "radius": 2.0}
                )

        names, result = asyncio.run(scenario())
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert {t.name for t in TOOLS} <= names
    assert not result.isError, text_of(result)
    assert result.structuredContent["tool"] == "blur"


#: Values for required arguments by name; everything else keeps its default.
SAMPLE_ARGUMENTS = {"text": "SALE", "prompt": "a green leaf", "description": "the cup"}
#: Arguments a tool needs beyond its required ones, or that keep the tiny models fast.
EXTRA_ARGUMENTS = {
    "recolor": {"color": "forestgreen"},
    "adjust_tone": {"brightness": 0.2},
    "inpaint_region": {"num_inference_steps": 1},
    "edit_by_instruction": {"num_inference_steps": 1},
    "generate_background": {"num_inference_steps": 1, "region": BOX},
    "find_region": {"min_score": 0.0},
    "segment_region": {"threshold": 0.0},
}


def sample_arguments(tool, image: str) -> dict[str, Any]:
    """Arguments for a listed tool, read off its input schema."""
    arguments: dict[str, Any] = {}
    for name in tool.inputSchema.get("required", []):
        schema = tool.inputSchema["properties"][name]
        if name == "image_id":
            arguments[name] = image
        elif name == "region":
            arguments[name] = BOX
        elif "enum" in schema:
            arguments[name] = schema["enum"][0]
        else:
            arguments[name] = SAMPLE_ARGUMENTS.get(name, "x")
    return {**arguments, **EXTRA_ARGUMENTS.get(tool.name, {})}


@pytest.mark.slow
def test_every_listed_tool_answers_over_mcp(store, tmp_path):
    """All tools, the generative and grounding ones on tiny local models, called through one MCP session."""
    import tiny_models

    models = tmp_path / "models"
    tiny_models.pipeline("sd-inpaint").save_pretrained(models / "inpaint")
    tiny_models.pipeline("instruct-pix2pix").save_pretrained(models / "pix2pix")
    grounding = tiny_models.save_grounding_models(models)
    flags = [
        "--generative",
        "--grounding",
        "--device=cpu",
        f"--inpaint-model={models / 'inpaint'}",
        f"--edit-model={models / 'pix2pix'}",
        f"--detector-model={grounding['detector_model']}",
        f"--segmenter-model={grounding['segmenter_model']}",
    ]
    path = tmp_path / "photo.png"
    photo = Image.new("RGB", (128, 96), (235, 225, 200))
    draw = ImageDraw.Draw(photo)
    draw.rectangle((8, 8, 40, 88), fill=(40, 90, 160))
    draw.text((64, 48), "SALE", fill=(0, 0, 0), font=ImageFont.load_default(22), anchor="mm")  # inside BOX
    photo.save(path)

    async def scenario():
        async with stdio_session(store, *flags) as session:
            image = (await session.call_tool("import_image", {"source": str(path)})).structuredContent["id"]
            results = {}
            for tool in (await session.list_tools()).tools:
                arguments = (
                    {"source": str(path)} if tool.name == "import_image" else sample_arguments(tool, image)
                )
                results[tool.name] = await session.call_tool(tool.name, arguments)
            return image, results

    os.environ["OMP_NUM_THREADS"] = "1"  # the server's torch: one thread, as in the in-process tests
    try:
        image, results = asyncio.run(scenario())
    finally:
        del os.environ["OMP_NUM_THREADS"]
    failed = {name: text_of(result) for name, result in results.items() if result.isError}
    assert not failed
    assert len(results) == len(TOOLS) + len(GENERATIVE_TOOLS) + len(GROUNDING_TOOLS) + 2
    for name, result in results.items():
        ref = result.structuredContent
        assert ref["id"] in store and decode_image(result).shape == (96, 128, 3), name
        if name in {t.name for t in [*TOOLS, *GENERATIVE_TOOLS]}:
            assert ref["parent"] == image and ref["tool"] == name

"""`pixplan mcp`: the tool library served over the Model Context Protocol, for any MCP client.

    pixplan mcp                                   # stdio (what desktop clients and agent frameworks launch)
    pixplan mcp --http --port 8765                # streamable HTTP on http://127.0.0.1:8765/mcp/
    pixplan mcp --generative --grounding --device cuda --dtype float16

Every tool of `pixplan.tools.TOOLS` is listed with its own argument schema; `--generative` and `--grounding` add
the diffusers and detection/segmentation tools (their models load on first call). Two helpers come with them:
`import_image` (a file path or base64 image into the store) and `region_catalog` (the named regions an edit can
target). Wherever a tool takes `image_id`, a client may instead pass a path to an image file or the image itself
as base64 (a ``data:image/png;base64,...`` URL or bare base64): it is imported into the store first. Each tool
answers with its summary text (which names the new image id), the image as PNG image content, and the image's
reference as structured content. Bad arguments come back as MCP error results (``isError``) with the tool's
message.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import os
import re
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException, tool
from PIL import Image

from pixplan.tools.store import ImageError, ImageRef, ImageStore, store_from_config

#: Longest side of the image returned as MCP image content (the stored image keeps its full size).
PREVIEW_SIDE = 1024
IMAGE_ARGUMENT = (
    "The image: its id in pixplan's image store, a path to an image file, or the image as base64 "
    "(a data:image/png;base64,... URL or bare base64 PNG/JPEG)."
)
_STORE_ID = re.compile(r"[0-9a-f]{16,64}")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{16,}")
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def resolve_image(store: ImageStore, value: str) -> str:
    """The store id for an image argument: a store id, a file path, or base64 image data (imported)."""
    value = value.strip()
    if _STORE_ID.fullmatch(value) and value in store:
        return value
    if value.startswith("data:"):
        header, _, payload = value.partition(",")
        if ";base64" not in header:
            raise ToolException("a data URL image must be base64: data:image/png;base64,...")
        return _import_bytes(store, payload)
    path = Path(value).expanduser()
    if len(value) < 4096 and path.is_file():
        return _put(store, path)
    data = _image_bytes(value) if _BASE64.fullmatch(value) else None
    if data is None:
        raise ToolException(
            f"unknown image {value[:80]!r}: pass a store image id, a path to an image file, or base64 image data"
        )
    return _put(store, data)


def _image_bytes(payload: str) -> bytes | None:
    """Decoded base64 if it holds an image file (by its magic number), else None."""
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(_MAGIC) or data[8:12] == b"WEBP" else None


def _import_bytes(store: ImageStore, payload: str) -> str:
    data = _image_bytes(payload)
    if data is None:
        raise ToolException("the data URL does not hold a base64 PNG, JPEG, WebP, GIF, BMP or TIFF image")
    return _put(store, data)


def _put(store: ImageStore, source: Path | bytes) -> str:
    try:
        return store.put_file(source)["id"]
    except ImageError as error:
        raise ToolException(str(error)) from None


@tool(parse_docstring=True, response_format="content_and_artifact")
def import_image(source: str, config: RunnableConfig = None) -> tuple[str, ImageRef]:
    """Add an image to the store and get its image_id for the editing tools.

    Args:
        source: A path to an image file, or the image as base64 (a data:image/png;base64,... URL or bare base64).
    """
    store = store_from_config(config)
    ref = store.ref(resolve_image(store, source))
    return f"image_id {ref['id']} ({ref['width']}x{ref['height']})", ref


@tool(parse_docstring=True, response_format="content_and_artifact")
def region_catalog(image_id: str, config: RunnableConfig = None) -> tuple[str, ImageRef]:
    """List the named regions of an image (text lines, objects, background, whole) that tools take as `region`.

    Finds them (OCR and foreground segmentation) the first time; later calls reuse the catalog, including
    regions added by find_region and segment_region.

    Args:
        image_id: Id of the image.
    """
    from pixplan.tools.perception import build_catalog, describe_catalog
    from pixplan.tools.regions import load_catalog

    store = store_from_config(config)
    if image_id not in store:
        raise ToolException(f"unknown image_id {image_id!r}: pass the id of the current image")
    catalog = load_catalog(store, image_id) or build_catalog(store, image_id)
    return describe_catalog(catalog), store.ref(image_id)


def library(*, generative: bool = False, grounding: bool = False) -> list[BaseTool]:
    """The tools the server offers: the helpers, the classical library, and the optional model-backed tools."""
    from pixplan.tools import TOOLS

    tools: list[BaseTool] = [import_image, region_catalog, *TOOLS]
    if generative:
        from pixplan.tools.generative import GENERATIVE_TOOLS

        tools += GENERATIVE_TOOLS
    if grounding:
        from pixplan.tools.grounding import GROUNDING_TOOLS

        tools += GROUNDING_TOOLS
    return tools


def input_schema(library_tool: BaseTool) -> dict[str, Any]:
    """The JSON schema a client sees: the tool's own arguments, with `image_id` accepting files and base64 too."""
    schema = library_tool.tool_call_schema.model_json_schema()
    if "image_id" in schema.get("properties", {}):
        schema["properties"]["image_id"] = {"type": "string", "title": "Image", "description": IMAGE_ARGUMENT}
    return schema


def preview_png(image: Image.Image, side: int = PREVIEW_SIDE) -> str:
    """Base64 PNG of the image, scaled down to `side` pixels at most."""
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def build_server(tools: list[BaseTool], config: dict[str, Any]) -> Any:
    """A low-level MCP server whose tools are `tools`, each called with `config` (store, model settings)."""
    import anyio
    from mcp import types
    from mcp.server.lowlevel import Server

    server = Server("pixplan")
    by_name = {library_tool.name: library_tool for library_tool in tools}
    listing = [types.Tool(name=t.name, description=t.description, inputSchema=input_schema(t)) for t in tools]

    @server.list_tools()
    async def list_tools() -> list[types.Tool]:
        return listing

    def run(name: str, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        if name not in by_name:
            raise ToolException(f"unknown tool {name!r}; tools: {', '.join(by_name)}")
        store = store_from_config(config)
        if isinstance(arguments.get("image_id"), str):
            arguments = {**arguments, "image_id": resolve_image(store, arguments["image_id"])}
        call = {"type": "tool_call", "id": "mcp", "name": name, "args": arguments}
        message = by_name[name].invoke(call, config=config)
        ref: ImageRef = message.artifact
        content: list[Any] = [types.TextContent(type="text", text=str(message.content))]
        content.append(
            types.ImageContent(type="image", data=preview_png(store.get(ref["id"])), mimeType="image/png")
        )
        return content, dict(ref)

    @server.call_tool()
    async def call_tool(name: str, arguments: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        # Tools are synchronous and CPU (or GPU) bound: run them off the event loop. Any exception, a
        # ToolException above all, becomes an MCP error result carrying its message.
        return await anyio.to_thread.run_sync(run, name, dict(arguments))

    return server


async def serve_stdio(server: Any) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


async def serve_http(server: Any, port: int) -> None:
    """Streamable HTTP on 127.0.0.1 only, at /mcp/, with DNS-rebinding protection."""
    import contextlib

    import uvicorn
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
    from starlette.routing import Mount

    manager = StreamableHTTPSessionManager(
        app=server,
        security_settings=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["127.0.0.1:*", "localhost:*"],
            allowed_origins=["http://127.0.0.1:*", "http://localhost:*"],
        ),
    )

    async def handle(scope: Any, receive: Any, send: Any) -> None:
        await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        async with manager.run():
            yield

    app = Starlette(routes=[Mount("/mcp", app=handle)], lifespan=lifespan)
    await uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")).serve()


def server_config(args: argparse.Namespace) -> dict[str, Any]:
    """The RunnableConfig every tool call gets: the store and the model settings from the command line."""
    from pixplan.tools.generative import GenerativeSettings
    from pixplan.tools.grounding import GroundingSettings

    generative, grounding = GenerativeSettings(), GroundingSettings()
    if args.cpu_offload:
        generative.cpu_offload = True
    for settings in (generative, grounding):
        for name in ("inpaint_model", "edit_model", "detector_model", "segmenter_model", "device", "dtype"):
            value = getattr(args, name, None)
            if value is not None and hasattr(settings, name):
                setattr(settings, name, value)
    configurable: dict[str, Any] = {"generative": generative, "grounding": grounding}
    if args.store is not None:
        configurable["store_dir"] = str(args.store)
    return {"configurable": configurable}


def command(args: argparse.Namespace) -> int:
    import anyio

    if args.store is not None:
        os.environ["PIXPLAN_STORE"] = str(args.store)
    server = build_server(library(generative=args.generative, grounding=args.grounding), server_config(args))
    if args.http:
        anyio.run(serve_http, server, args.port)
    else:
        anyio.run(serve_stdio, server)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mcp",
        help="serve the tool library over MCP (stdio, or streamable HTTP on 127.0.0.1)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--http", action="store_true", help="streamable HTTP on 127.0.0.1 instead of stdio")
    parser.add_argument("--port", type=int, default=8765, help="HTTP port (default 8765)")
    parser.add_argument(
        "--store", type=Path, default=None, help="image store folder (default $PIXPLAN_STORE)"
    )
    parser.add_argument("--generative", action="store_true", help="also serve the diffusers tools")
    parser.add_argument("--grounding", action="store_true", help="also serve find_region and segment_region")
    models = parser.add_argument_group("models (default: $PIXPLAN_* variables, then the built-in model ids)")
    models.add_argument("--inpaint-model", help="SD/SDXL inpainting model id or folder")
    models.add_argument(
        "--edit-model", help="InstructPix2Pix / FLUX.1 Kontext / Qwen-Image-Edit model id or folder"
    )
    models.add_argument("--detector-model", help="OWLv2 model id or folder")
    models.add_argument("--segmenter-model", help="CLIPSeg model id or folder")
    models.add_argument("--device", help="torch device or 'auto'")
    models.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"])
    models.add_argument("--cpu-offload", action="store_true", help="enable model CPU offload")
    parser.set_defaults(func=command)

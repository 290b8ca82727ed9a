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

Paths are read only inside the allowed roots: the working directory (or each ``--allow-dir``) and the store,
checked after symlinks are resolved; a refused path gets the same answer whether or not the file exists. Store
ids are checked against the store's id format before any path is built from them.

    pixplan mcp --http --allow-dir ~/Pictures --allow-dir /data/ads
"""

from __future__ import annotations

import argparse
import base64
import io
import os
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException, tool
from PIL import Image
from pydantic import ValidationError

from pixplan.tools.calls import error_text
from pixplan.tools.image_input import import_image_input
from pixplan.tools.store import (
    ImageError,
    ImageRef,
    ImageStore,
    default_store_dir,
    store_from_config,
)

#: Longest side of the image returned as MCP image content (the stored image keeps its full size).
PREVIEW_SIDE = 1024
IMAGE_ARGUMENT = (
    "The image: its id in pixplan's image store, a path to an image file in the server's allowed folders, "
    "or the image as base64 "
    "(a data:image/png;base64,... URL or bare base64 PNG/JPEG)."
)


def resolve_image(store: ImageStore, value: str, roots: list[Path]) -> str:
    """The store id for an image argument: a store id, a file under the allowed `roots`, or base64 image data
    (`import_image_input`; a path is resolved, symlinks included, before it is checked against the roots)."""
    try:
        return import_image_input(store, value, roots=roots)["id"]
    except ImageError as error:
        raise ToolException(str(error)) from None


def allowed_roots(args: argparse.Namespace) -> list[Path]:
    """The folders the server may read images from: `--allow-dir` (default: the working directory), and the store."""
    roots = []
    for folder in args.allow_dir or [Path.cwd()]:
        folder = Path(folder).expanduser().resolve()
        if not folder.is_dir():
            raise ValueError(f"--allow-dir {folder} is not a directory")
        roots.append(folder)
    store = Path(args.store) if args.store is not None else default_store_dir()
    return [*roots, store.expanduser().resolve()]


def roots_from_config(config: Any) -> list[Path]:
    """The allowed roots of a tool call (`configurable["allow_dirs"]`), else the working directory and the store."""
    configurable = (config or {}).get("configurable", {}) if isinstance(config, dict) else {}
    if configurable.get("allow_dirs") is not None:
        return [Path(folder).resolve() for folder in configurable["allow_dirs"]]
    return [Path.cwd().resolve(), store_from_config(config).root.resolve()]


@tool(parse_docstring=True, response_format="content_and_artifact")
def import_image(source: str, config: RunnableConfig = None) -> tuple[str, ImageRef]:
    """Add an image to the store and get its image_id for the editing tools.

    Args:
        source: A path to an image file, or the image as base64 (a data:image/png;base64,... URL or bare base64).
    """
    store = store_from_config(config)
    ref = store.ref(resolve_image(store, source, roots_from_config(config)))
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


def build_server(tools: list[BaseTool], config: dict[str, Any], allow_dirs: list[Path] | None = None) -> Any:
    """A low-level MCP server whose tools are `tools`, each called with `config` (store, model settings).

    Image paths in arguments are read only inside `allow_dirs` (default: the working directory and the store).
    """
    import anyio
    from mcp import types
    from mcp.server.lowlevel import Server

    configurable = {**config.get("configurable", {})}
    if allow_dirs is not None:
        configurable["allow_dirs"] = [str(Path(folder).resolve()) for folder in allow_dirs]
    config = {**config, "configurable": configurable}
    roots = roots_from_config(config)
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
            arguments = {**arguments, "image_id": resolve_image(store, arguments["image_id"], roots)}
        call = {"type": "tool_call", "id": "mcp", "name": name, "args": arguments}
        try:
            message = by_name[name].invoke(call, config=config)
        except (ValidationError, ImageError, KeyError) as error:  # as one line, like the tools' own errors
            raise ToolException(error_text(error)) from None
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
    tools = library(generative=args.generative, grounding=args.grounding)
    server = build_server(tools, server_config(args), allowed_roots(args))
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
    parser.add_argument(
        "--allow-dir",
        action="append",
        type=Path,
        metavar="DIR",
        help="a folder whose image files clients may name by path (repeatable; default: the working directory). "
        "The store is always allowed; paths are resolved, symlinks included, before they are checked",
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

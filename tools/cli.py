"""`pixplan tools` and `pixplan catalog`: list the tools, run one on an image, demo them all, show regions.

pixplan tools                                  # every classical tool, its description and arguments
pixplan tools --all                            # also the generative and grounding tools
pixplan tools run recolor photo.jpg --region r3 --args '{"color": "forestgreen"}' -o green.png
pixplan tools demo -o out/                     # every tool on the bundled example ad, plus a contact sheet
pixplan catalog photo.jpg                      # the named regions perception finds
pixplan catalog photo.jpg --detect "the bottle"  # plus open-vocabulary detections (OWLv2 weights needed)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: The example ad bundled with pixplan (a scikit-image photo with a band, a headline and a caption).
EXAMPLE = Path(__file__).parent / "assets" / "example_ad.jpg"


def register(subparsers: argparse._SubParsersAction) -> None:
    tools = subparsers.add_parser(
        "tools",
        help="list the editing tools, run one on an image, or demo them all",
        description="Without a subcommand: list every classical tool with its description and arguments "
        "(--generative, --grounding or --all: also those tools).",
    )
    tools.add_argument(
        "--generative", action="store_true", help="also list the generative tools (diffusers models)"
    )
    tools.add_argument(
        "--grounding", action="store_true", help="also list the grounding tools (detection, segmentation)"
    )
    tools.add_argument("--all", action="store_true", help="list every tool: classical, generative, grounding")
    tools.set_defaults(func=list_tools)
    actions = tools.add_subparsers(dest="action", metavar="ACTION")

    run = actions.add_parser("run", help="run one tool on an image file and write the result")
    run.add_argument("tool", help="tool name (see `pixplan tools`)")
    run.add_argument("image", help="image file (PNG, JPEG, WebP, BMP, TIFF, GIF)")
    run.add_argument(
        "--region", default="whole", help="catalog id (r2), whole, background, or a box as JSON [x0,y0,x1,y1]"
    )
    run.add_argument(
        "--args", default="{}", help='the tool\'s other arguments as JSON, e.g. \'{"color": "gold"}\''
    )
    run.add_argument("-o", "--output", required=True, help="where to write the result (.png, .jpg or .webp)")
    run.add_argument("--store", help="image store folder (default $PIXPLAN_STORE or ~/.cache/pixplan/store)")
    run.set_defaults(func=run_tool)

    demo = actions.add_parser(
        "demo", help="run every tool on the bundled example ad; write images and a sheet"
    )
    demo.add_argument("-o", "--output", default="pixplan-demo", help="output folder (default pixplan-demo/)")
    demo.add_argument("--image", help="use this image instead of the bundled example ad")
    demo.add_argument("--store", help="image store folder (default: a folder inside the output folder)")
    demo.set_defaults(func=run_demo)

    catalog = subparsers.add_parser("catalog", help="print the named regions perception finds in an image")
    catalog.add_argument("image", help="image file")
    catalog.add_argument("--json", action="store_true", help="print the catalog as JSON")
    catalog.add_argument(
        "--store", help="image store folder (default $PIXPLAN_STORE or ~/.cache/pixplan/store)"
    )
    catalog.add_argument(
        "--detect",
        action="append",
        default=[],
        metavar="QUERY",
        help="also add the boxes an open-vocabulary detector (OWLv2) finds for QUERY, e.g. 'the bottle' "
        "(repeatable; needs torch, transformers and the detector's weights)",
    )
    catalog.add_argument(
        "--detector-model", help="OWLv2 model id or local folder (default $PIXPLAN_DETECTOR_MODEL)"
    )
    catalog.set_defaults(func=show_catalog)


# --------------------------------------------------------------------------------------------------- list


def describe_tool(tool: Any) -> str:
    """A tool's name, the first line of its description and its arguments with types and defaults."""
    schema = tool.tool_call_schema.model_json_schema()
    required = set(schema.get("required", []))
    function = getattr(tool, "func", None)
    summary = ((function.__doc__ if function else None) or tool.description).strip().splitlines()[0]
    lines = [f"{tool.name}: {summary}"]
    for name, spec in schema["properties"].items():
        kind = _type_name(spec)
        bounds = "".join(
            f" {symbol}{spec[key]}"
            for key, symbol in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="))
            if key in spec
        )
        default = "required" if name in required else f"default {json.dumps(spec.get('default'))}"
        lines.append(f"    {name} ({kind}{bounds}; {default})")
    return "\n".join(lines)


def _type_name(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return " | ".join(json.dumps(value) for value in spec["enum"])
    if "anyOf" in spec:
        return " | ".join(_type_name(option) for option in spec["anyOf"])
    if spec.get("type") == "array":
        return f"list[{_type_name(spec.get('items', {}))}]"
    return str(spec.get("type", "any"))


def list_tools(args: argparse.Namespace) -> int:
    """The classical tools and, when asked, the generative and grounding ones (listing them loads no torch)."""
    import pixplan.tools

    print(f"{len(pixplan.tools.TOOLS)} classical tools (every one takes image_id and a region):\n")
    for tool in pixplan.tools.TOOLS:
        print(describe_tool(tool) + "\n")
    if args.generative or args.all:
        tools = pixplan.tools.GENERATIVE_TOOLS
        print(f"{len(tools)} generative tools (diffusers; models from the user's settings):\n")
        for tool in tools:
            print(describe_tool(tool) + "\n")
    if args.grounding or args.all:
        tools = pixplan.tools.GROUNDING_TOOLS
        print(f"{len(tools)} grounding tools (transformers; they add regions to the catalog):\n")
        for tool in tools:
            print(describe_tool(tool) + "\n")
    print("Run a classical tool: pixplan tools run TOOL IMAGE --region R --args JSON -o OUT.png")
    return 0


# --------------------------------------------------------------------------------------------------- run


def _store(folder: str | None):
    from pixplan.tools.store import ImageStore, store_from_config

    return ImageStore(folder) if folder else store_from_config(None)


def _catalog(store: Any, image_id: str):
    """The image's region catalog, built by perception the first time."""
    from pixplan.tools.perception import build_catalog
    from pixplan.tools.regions import load_catalog

    return load_catalog(store, image_id) or build_catalog(store, image_id)


def _parse_region(text: str) -> Any:
    return json.loads(text) if text.strip().startswith("[") else text


def run_tool(args: argparse.Namespace) -> int:
    """Errors of the image, the region, the arguments or the output path propagate to `pixplan`'s main(), which
    prints them as one line (exit code 2)."""
    from pixplan.tools import TOOLS
    from pixplan.tools.calls import invoke_tool
    from pixplan.tools.regions import parse_region
    from pixplan.tools.store import check_output_path, save_image

    tools = {tool.name: tool for tool in TOOLS}
    if args.tool not in tools:
        print(f"error: unknown tool {args.tool!r}; tools: {', '.join(tools)}", file=sys.stderr)
        return 2
    try:
        tool_args = json.loads(args.args)
        region = _parse_region(args.region)
    except json.JSONDecodeError as error:
        print(f"error: --args and --region must be valid JSON ({error})", file=sys.stderr)
        return 2
    if not isinstance(tool_args, dict):
        print('error: --args must be a JSON object, e.g. \'{"color": "gold"}\'', file=sys.stderr)
        return 2
    check_output_path(args.output)
    store = _store(args.store)
    image_id = store.put_file(args.image)["id"]
    if parse_region(region).kind in ("catalog", "background"):
        _catalog(store, image_id)
    summary, ref = invoke_tool(tools[args.tool], store, image_id, {"region": region, **tool_args})
    save_image(store.get(ref["id"]), args.output)
    print(summary)
    print(f"wrote {args.output}")
    return 0


# --------------------------------------------------------------------------------------------------- catalog


def show_catalog(args: argparse.Namespace) -> int:
    from pixplan.tools.perception import describe_catalog

    store = _store(args.store)
    image_id = store.put_file(args.image)["id"]
    if args.detect:  # a fresh catalog: a stored one may have been built without these detections
        from pixplan.tools.grounding import GroundingSettings
        from pixplan.tools.perception import build_catalog

        model = {"detector_model": args.detector_model} if args.detector_model else {}
        catalog = build_catalog(store, image_id, detect=args.detect, grounding=GroundingSettings(**model))
    else:
        catalog = _catalog(store, image_id)
    print(json.dumps(catalog, indent=1) if args.json else describe_catalog(catalog))
    return 0


# --------------------------------------------------------------------------------------------------- demo


def run_demo(args: argparse.Namespace) -> int:
    from pixplan.tools import TOOLS
    from pixplan.tools.calls import invoke_tool
    from pixplan.tools.examples import example_call
    from pixplan.tools.perception import describe_catalog
    from pixplan.tools.store import ImageStore, save_image

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    store = ImageStore(args.store or output / "store")
    image_id = store.put_file(args.image or EXAMPLE)["id"]
    catalog = _catalog(store, image_id)
    print(describe_catalog(catalog) + "\n")
    original = store.get(image_id)
    save_image(original, output / "00_original.png")
    tiles = [("original", original)]
    for number, tool in enumerate(TOOLS, start=1):
        call = example_call(tool.name, catalog)
        summary, ref = invoke_tool(tool, store, image_id, call)
        result = store.get(ref["id"])
        path = output / f"{number:02d}_{tool.name}.png"
        save_image(result, path)
        shown = {key: value for key, value in call.items() if key != "region"}
        print(f"{tool.name}({json.dumps(shown)}) on {call['region']}: {summary.split(': ', 1)[-1]} -> {path}")
        tiles.append((f"{tool.name} on {_short(call['region'])}", result))
    sheet = contact_sheet(tiles)
    save_image(sheet, output / "contact_sheet.png")
    print(f"\nwrote {len(tiles)} images and {output / 'contact_sheet.png'}")
    return 0


def _short(region: Any) -> str:
    return (
        "[" + ", ".join(f"{value:.2f}" for value in region) + "]" if isinstance(region, list) else str(region)
    )


def contact_sheet(tiles: list[tuple[str, Any]], tile: int = 256, columns: int = 4):
    """A grid of labelled thumbnails."""
    from PIL import Image, ImageDraw, ImageFont

    label_height = 22
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * tile, rows * (tile + label_height)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(14)
    for index, (label, image) in enumerate(tiles):
        thumbnail = image.convert("RGB")
        thumbnail.thumbnail((tile, tile))
        left = (index % columns) * tile
        top = (index // columns) * (tile + label_height)
        sheet.paste(thumbnail, (left + (tile - thumbnail.width) // 2, top + label_height))
        draw.text((left + 4, top + 3), label, fill=(20, 20, 20), font=font)
    return sheet

"""Content-addressed image store with lineage.

Images never travel through graph state, messages or checkpoints as pixels: they live here as PNG files named
by the hash of their pixels, and everything else holds a small `ImageRef`. Each stored image remembers its
parent, the tool that made it and the tool's arguments, so an edit can be explained and replayed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, NotRequired

import cv2
import numpy as np
from PIL import Image, ImageOps
from typing_extensions import TypedDict

#: Largest image accepted, in pixels (about 8k x 8k). Protects against decompression bombs.
MAX_PIXELS = 64_000_000
#: Largest image file accepted, in bytes: checked before a file is read, beside the pixel limit of its header.
MAX_BYTES = 256 * 2**20
#: Smallest side of an image a user gives (a tool, a catalog or a judge has nothing to work on below it).
MIN_SIDE = 4
#: The form of a stored image's id (`pixel_hash`): checked before any path is built from an id.
IMAGE_ID = re.compile(r"[0-9a-f]{24}")
#: Names of JSON documents beside the images (`put_json`): no separators, no dots.
_DOCUMENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
#: Image files a command may write, by extension, and the Pillow format each one means.
IMAGE_SUFFIXES = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
#: Formats Pillow may open. Anything else is refused before decoding.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "MPO")


class ImageError(ValueError):
    """An image could not be read or written: corrupt, truncated, empty, too large, or an unusable path."""


def is_image_id(value: object) -> bool:
    """Whether `value` has the form of a store id (24 lowercase hex digits); says nothing of whether it exists."""
    return isinstance(value, str) and IMAGE_ID.fullmatch(value) is not None


class ImageRef(TypedDict):
    """A reference to a stored image: what state, messages, traces and checkpoints hold instead of pixels."""

    id: str
    width: int
    height: int
    parent: str | None
    tool: str | None
    # Arguments the tool was called with (JSON-serialisable), where a tool made it.
    args: NotRequired[dict[str, Any]]


def _to_rgb(image: Image.Image) -> Image.Image:
    """Normalise any Pillow image to 8-bit RGB: honours EXIF orientation, palettes, alpha, CMYK, 16 bit."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(
            np.clip(array * (255.0 if array.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        )
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


def open_image(
    source: str | os.PathLike[str] | bytes, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES
) -> Image.Image:
    """Read an image from a path or bytes into RGB, with clear errors for every way it can be bad.

    The file's size and its header (format, width, height) are checked before its pixels are decoded, and a
    file is never read into memory whole: a huge or hostile file costs a `stat` and a few header bytes.
    """
    if isinstance(source, bytes):
        name = "<bytes>"
        size = len(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path}: no such image file")
        name, size = str(path), path.stat().st_size
    if size == 0:
        raise ImageError(f"{name}: the file is empty")
    if size > max_bytes:
        raise ImageError(f"{name}: the file is too large ({size} bytes; limit {max_bytes} bytes)")
    opened = io.BytesIO(source) if isinstance(source, bytes) else path
    try:
        probe = Image.open(opened)
    except Image.DecompressionBombError as error:
        raise ImageError(f"{name}: image is too large ({error})") from None
    except Exception:
        raise ImageError(f"{name}: not a readable image (corrupt or unsupported format)") from None
    with probe:
        fmt, (width, height) = probe.format, probe.size
        if fmt not in ACCEPTED_FORMATS:
            raise ImageError(f"{name}: unsupported format {fmt}; use one of {', '.join(ACCEPTED_FORMATS)}")
        if width * height > max_pixels:
            raise ImageError(
                f"{name}: image is too large ({width}x{height} = {width * height} pixels; limit {max_pixels})"
            )
        if min(width, height) < MIN_SIDE:
            raise ImageError(f"{name}: image is too small ({width}x{height}; at least {MIN_SIDE} px a side)")
        try:
            probe.load()
            return _to_rgb(probe)
        except Exception as error:
            raise ImageError(f"{name}: the image data is corrupt or truncated ({error})") from None


def pixel_hash(image: Image.Image) -> str:
    """Content id of an image: hash of its mode, size and pixels (not of any file encoding)."""
    if image.mode in _ARRAY_MODES.values():
        return _array_hash(np.asarray(image), image.mode)
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:24]


#: Array channel counts and the Pillow modes they stand for (the modes the store handles without Pillow).
_ARRAY_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def _array_mode(pixels: np.ndarray) -> str:
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or channels not in _ARRAY_MODES:
        raise ValueError(f"expected an H x W (x 3 or 4) uint8 array, got {pixels.dtype} {pixels.shape}")
    return _ARRAY_MODES[channels]


def _array_hash(pixels: np.ndarray, mode: str) -> str:
    """`pixel_hash` of the image an array stands for, without building it (same bytes as `tobytes`)."""
    digest = hashlib.sha256()
    digest.update(f"{mode}:{pixels.shape[1]}x{pixels.shape[0]}:".encode())
    digest.update(memoryview(np.ascontiguousarray(pixels)).cast("B"))
    return digest.hexdigest()[:24]


#: How stored PNGs are written: zlib level 1 with the Paeth row filter and run-length matching. The store is a
#: working cache of many intermediate images, where encoding time matters more than the last byte of disk, but
#: uncompressed files (level 0) made a 200 KB upload a 192 MB store file. benchmarks/bench_store.py measures it:
#: an ad-like megapixel stores 7.6x smaller for +0.02 s a put, a photo 2.6x smaller for +0.06 s (load 11 on 2
#: cores; at 16 MP the smaller write wins: 15x smaller and 0.24 s faster). Exports use `save_image` (level 6).
FAST_PNG = [
    cv2.IMWRITE_PNG_COMPRESSION, 1,
    cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH,
    cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
]  # fmt: skip
_CV2_CHANNEL_ORDER = {"L": None, "RGB": cv2.COLOR_RGB2BGR, "RGBA": cv2.COLOR_RGBA2BGRA}


def _encode_array(pixels: np.ndarray) -> bytes:
    """Fast PNG bytes of an L, RGB or RGBA uint8 array."""
    conversion = _CV2_CHANNEL_ORDER[_array_mode(pixels)]
    ok, encoded = cv2.imencode(
        ".png", pixels if conversion is None else cv2.cvtColor(pixels, conversion), FAST_PNG
    )
    if not ok:
        raise ImageError("OpenCV could not encode the image as PNG")
    return encoded.tobytes()


def encode_png(image: Image.Image, *, fast: bool = True) -> bytes:
    """PNG bytes of an image; `fast` trades file size for speed (see `FAST_PNG`)."""
    if fast and image.mode in _CV2_CHANNEL_ORDER:
        return _encode_array(np.asarray(image))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1 if fast else 6)
    return buffer.getvalue()


def check_output_path(
    path: str | os.PathLike[str], *, suffixes: tuple[str, ...] = tuple(IMAGE_SUFFIXES)
) -> Path:
    """A file a command will write, checked before any work starts: a clear `ImageError` for what cannot be."""
    if not str(path).strip():
        raise ImageError("the output path is empty")
    target = Path(path)
    if target.is_dir():
        raise ImageError(
            f"{target} is a directory; give a file name such as {target / ('out' + suffixes[0])}"
        )
    if target.suffix.lower() not in suffixes:
        known = ", ".join(suffixes)
        raise ImageError(f"{target}: unknown extension {target.suffix or '(none)'!r}; use one of {known}")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ImageError(f"{target}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ImageError(f"{target}: {parent} is not writable")
    return target


def save_image(image: Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write an image a user keeps, in the format its extension names (PNG, JPEG, WebP), atomically."""
    target = check_output_path(path)
    fmt = IMAGE_SUFFIXES[target.suffix.lower()]
    if fmt == "PNG":
        _atomic_write(target, encode_png(image, fast=False))
        return target
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, quality=95)
    _atomic_write(target, buffer.getvalue())
    return target


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The permissions of every file pixplan writes: what `open()` would give (0o666 less the umask at start-up).
FILE_MODE = 0o666 & ~_umask()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary file and rename: a crash never leaves a half-written file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        # mkstemp makes the file 0o600; a result file should read like any other (same mode in every command).
        os.fchmod(handle, FILE_MODE)
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class _DecodedCache:
    """The most recently used images' pixels, by file path, as read-only arrays.

    A stored image never changes (its name is the hash of its pixels), so an entry can never be stale; it only
    saves decoding the PNG again when a chain of edits reads the image the previous step wrote.
    """

    def __init__(self, max_bytes: int = 256 * 2**20):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> np.ndarray | None:
        with self._lock:
            pixels = self._entries.get(path)
            if pixels is not None:
                self._entries.move_to_end(path)
            return pixels

    def put(self, path: Path, pixels: np.ndarray) -> np.ndarray:
        """Remember a copy of `pixels` (the caller may go on changing its array) and return it, read-only."""
        pixels = np.array(pixels, order="C")
        pixels.flags.writeable = False
        with self._lock:
            self._entries[path] = pixels
            self._entries.move_to_end(path)
            while (
                sum(entry.nbytes for entry in self._entries.values()) > self.max_bytes
                and len(self._entries) > 1
            ):
                self._entries.popitem(last=False)
        return pixels


_DECODED = _DecodedCache()


class ImageStore:
    """Images as content-addressed PNG files in one folder, each with a JSON sidecar for its lineage.

    Two stores on the same folder see the same images, so a store is cheap to create by path, and a
    process that resumes an edit finds every image an earlier process saved.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        if not str(root).strip():
            raise ImageError("the image store folder is empty; give a folder path")
        if self.root.exists() and not self.root.is_dir():
            raise ImageError(f"image store {self.root} is not a directory")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ImageError(f"image store {self.root} cannot be created ({error.strerror})") from None

    def __repr__(self) -> str:
        return f"ImageStore({str(self.root)!r})"

    def _png(self, image_id: str) -> Path:
        # The one place a path is built from an id: nothing that is not an id (`../x`, `/etc/x`) gets this far.
        if not is_image_id(image_id):
            raise KeyError(f"{str(image_id)[:80]!r} is not an image id (24 hex digits)")
        return self.root / f"{image_id}.png"

    def _meta(self, image_id: str) -> Path:
        return self._png(image_id).with_suffix(".json")

    def put(
        self,
        image: Image.Image,
        *,
        parent: str | None = None,
        tool: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> ImageRef:
        """Store an image (any mode is kept as is) and return its reference; storing twice is free."""
        if image.mode in _ARRAY_MODES.values():
            return self.put_array(np.asarray(image), parent=parent, tool=tool, args=args)
        image_id = pixel_hash(image)
        ref = ImageRef(id=image_id, width=image.width, height=image.height, parent=parent, tool=tool)
        if args is not None:
            ref["args"] = args
        if not self._png(image_id).exists():
            _atomic_write(self._png(image_id), encode_png(image))
        if not self._meta(image_id).exists():
            _atomic_write(self._meta(image_id), json.dumps(ref, sort_keys=True).encode())
        return ref

    def put_array(
        self,
        pixels: np.ndarray,
        *,
        parent: str | None = None,
        tool: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> ImageRef:
        """Store an H x W (L), H x W x 3 (RGB) or H x W x 4 (RGBA) uint8 array; same id as the Pillow image."""
        mode = _array_mode(pixels)
        image_id = _array_hash(pixels, mode)
        ref = ImageRef(id=image_id, width=pixels.shape[1], height=pixels.shape[0], parent=parent, tool=tool)
        if args is not None:
            ref["args"] = args
        png = self._png(image_id)
        if not png.exists():
            _atomic_write(png, _encode_array(pixels))
            _DECODED.put(png, pixels)
        if not self._meta(image_id).exists():
            _atomic_write(self._meta(image_id), json.dumps(ref, sort_keys=True).encode())
        return ref

    def put_file(self, source: str | os.PathLike[str] | bytes, *, max_pixels: int = MAX_PIXELS) -> ImageRef:
        """Import a user's image file: validated, normalised to RGB, stored without a parent."""
        return self.put(open_image(source, max_pixels=max_pixels))

    def __contains__(self, image_id: object) -> bool:
        return is_image_id(image_id) and self._png(image_id).is_file()

    def ref(self, image_id: str) -> ImageRef:
        """The reference of a stored image, with its lineage."""
        if image_id not in self:
            raise KeyError(f"unknown image id {image_id!r}")
        meta = self._meta(image_id)
        if meta.exists():
            return json.loads(meta.read_text())
        with self.get(image_id) as image:
            return ImageRef(id=image_id, width=image.width, height=image.height, parent=None, tool=None)

    def get(self, image_id: str) -> Image.Image:
        """Load a stored image's pixels."""
        if image_id not in self:
            raise KeyError(f"unknown image id {image_id!r}")
        pixels = _DECODED.get(self._png(image_id))
        if pixels is not None:
            return Image.fromarray(pixels)
        try:
            image = Image.open(io.BytesIO(self._png(image_id).read_bytes()))
            image.load()
        except Exception as error:
            raise ImageError(f"stored image {image_id} is corrupt ({type(error).__name__})") from None
        if image.mode in _ARRAY_MODES.values():
            _DECODED.put(self._png(image_id), np.asarray(image))
        return image

    def get_array(self, image_id: str) -> np.ndarray:
        """A stored image's pixels as a read-only uint8 array: H x W for L, H x W x 3 or 4 for RGB or RGBA.

        Images of other modes (palette, 16 bit) come as RGB.
        """
        if image_id not in self:
            raise KeyError(f"unknown image id {image_id!r}")
        pixels = _DECODED.get(self._png(image_id))
        if pixels is not None:
            return pixels
        image = self.get(image_id)  # caches L, RGB and RGBA images
        pixels = _DECODED.get(self._png(image_id))
        if pixels is None:
            pixels = np.asarray(image.convert("RGB"))
        return pixels

    def path(self, image_id: str) -> Path:
        """The PNG file of a stored image (for export, thumbnails, or sending to a model)."""
        if image_id not in self:
            raise KeyError(f"unknown image id {image_id!r}")
        return self._png(image_id)

    def lineage(self, image_id: str) -> list[ImageRef]:
        """The chain of references from the original image to this one."""
        chain: list[ImageRef] = []
        current: str | None = image_id
        while current is not None:
            ref = self.ref(current)
            chain.append(ref)
            current = ref["parent"]
        return chain[::-1]

    def root_of(self, image_id: str) -> str:
        """The id of the original image this one derives from."""
        return self.lineage(image_id)[0]["id"]

    def put_json(self, name: str, payload: Any) -> Path:
        """Store a JSON document beside the images (region catalogs, caches), written atomically."""
        _atomic_write(path := self._document(name), json.dumps(payload, sort_keys=True, indent=1).encode())
        return path

    def get_json(self, name: str) -> Any | None:
        """A JSON document stored with `put_json`, or None (also for a name that cannot be one)."""
        if not isinstance(name, str) or not _DOCUMENT_NAME.fullmatch(name):
            return None
        path = self._document(name)
        return json.loads(path.read_text()) if path.is_file() else None

    def _document(self, name: str) -> Path:
        if not isinstance(name, str) or not _DOCUMENT_NAME.fullmatch(name):
            raise ValueError(f"{str(name)[:80]!r} is not a document name (letters, digits, '-' and '_')")
        return self.root / f"{name}.json"


def cache_dir() -> Path:
    """pixplan's cache folder (converted models, the bundled benchmark): `$PIXPLAN_CACHE`, else
    `$XDG_CACHE_HOME/pixplan` (usually `~/.cache/pixplan`)."""
    if "PIXPLAN_CACHE" in os.environ:
        return Path(os.environ["PIXPLAN_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pixplan"


def default_store_dir() -> Path:
    """`$PIXPLAN_STORE`, else `$XDG_CACHE_HOME/pixplan/store` (usually `~/.cache/pixplan/store`)."""
    if "PIXPLAN_STORE" in os.environ:
        return Path(os.environ["PIXPLAN_STORE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "pixplan" / "store"


def store_from_config(config: Any) -> ImageStore:
    """The store a tool call should use: `configurable["store_dir"]` of its RunnableConfig, else the default.

    Tools receive the store this way (injected, never an argument the model sees), so the same `TOOLS` work
    in pixplan's graph, in any LangChain agent, and behind the MCP server.
    """
    configurable = (config or {}).get("configurable", {}) if isinstance(config, dict) else {}
    store_dir = configurable.get("store_dir")
    return ImageStore(store_dir if store_dir is not None else default_store_dir())

"""Every form a user or a remote client gives an image in, made a store image by one function.

`import_image_input(store, value)` takes a file path, a store id, base64 or a data URL
(``data:image/png;base64,...``), raw bytes, a Pillow image, or a LangChain image content block (the standard
``{"type": "image", "base64": ...}`` / ``{"type": "image", "url": ...}`` / ``{"type": "image", "file_id": ...}``,
the older ``{"type": "image", "source_type": "base64", "data": ..., "mime_type": ...}`` and OpenAI's
``{"type": "image_url", "image_url": {"url": ...}}``). `edit()`, the edit graph's entry, the chat graph and the MCP
server all read images through it, so each of them accepts the same forms and refuses the same way: one line
of `ImageError` for an http(s) URL (pixplan runs offline and fetches nothing), data that is not an image, a
corrupt or too large image, an unknown store id, or a path outside the allowed folders. The checks and limits
are `ImageStore`'s (`open_image`: bytes, pixels, format, smallest side).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from pixplan.tools.store import MAX_BYTES, ImageError, ImageRef, ImageStore, is_image_id

#: What bare base64 looks like (no data URL header); anything shorter is taken for a path or an id.
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{16,}")
#: The first bytes of the image formats the store accepts (WebP is RIFF....WEBP, checked apart).
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
#: Longest string taken for a file path, and for a file name without a folder (the OS refuses longer ones).
_MAX_PATH = 4096
_PATH_COMPONENT = 255


def import_image_input(store: ImageStore, value: Any, *, roots: Sequence[Path] | None = None) -> ImageRef:
    """The store image for `value` (imported into `store` where needed), or a one-line `ImageError`.

    Args:
        store: where the image goes (a store id must already be in it).
        value: a path, a store id, base64 or a data URL, bytes, a Pillow image, or an image content block.
        roots: folders a path may lie in (symlinks resolved first; a refusal never tells whether a file outside
            them exists); None reads any path the caller names (local use: the CLI, `edit()`).
    """
    if isinstance(value, Image.Image):
        return store.put(value.convert("RGB"))
    if isinstance(value, bytes):
        return store.put_file(value)
    if isinstance(value, dict):
        return import_image_input(store, _block_source(value, store), roots=roots)
    if isinstance(value, os.PathLike):
        return store.put_file(_readable_path(os.fspath(value), roots))
    if not isinstance(value, str):
        raise ImageError(
            f"an image is a path, a store id, base64 / a data URL or an image content block, got {type(value).__name__}"
        )
    text = value.strip()
    if not text:
        raise ImageError("the image is empty: give a path, a store id, base64 / a data URL or an image block")
    if is_image_id(text):
        if text not in store:
            raise ImageError(f"unknown image id {text!r}: no such image in the store {store.root}")
        return store.ref(text)
    if text[:5].lower() == "data:":
        return store.put_file(_data_url_bytes(text))
    if _URL.match(text):
        scheme = text.split(":", 1)[0].lower()
        if scheme in ("http", "https"):
            raise ImageError(
                f"image URLs are not fetched ({text[:60]!r}): pixplan works offline; send the image itself "
                "(base64 or a data:image/png;base64,... URL)"
            )
        raise ImageError(f"unsupported image URL scheme {scheme!r}: send a path, base64 or a data URL")
    # Base64 first, then a path: whether a path exists never changes the answer to base64-looking text.
    data = _image_bytes(text) if _BASE64.fullmatch(text) else None
    if data is not None:
        return store.put_file(data)
    if len(text) > _PATH_COMPONENT and "/" not in text and os.sep not in text:
        raise ImageError("not an image: the text is neither a file path, a store id nor base64 image data")
    return store.put_file(_readable_path(text, roots))


def _image_bytes(payload: str) -> bytes | None:
    """Decoded base64 if it holds an image file (by its signature), else None; too large is an error."""
    if len(payload) > MAX_BYTES * 4 // 3 + 4:
        raise ImageError(f"the base64 image is too large (more than {MAX_BYTES} bytes)")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if data.startswith(_MAGIC) or data[8:12] == b"WEBP" else None


def _data_url_bytes(url: str) -> bytes:
    header, comma, payload = url.partition(",")
    media = header[5:].split(";", 1)[0].strip().lower()
    if not comma or ";base64" not in header.lower():
        raise ImageError("a data URL image must be base64: data:image/png;base64,...")
    if media and not media.startswith("image/"):
        raise ImageError(f"the data URL holds {media!r}, not an image")
    data = _image_bytes(payload)
    if data is None:
        raise ImageError("the data URL does not hold a base64 PNG, JPEG, WebP, GIF, BMP or TIFF image")
    return data


def _readable_path(text: str, roots: Sequence[Path] | None) -> Path:
    """The file a path names; inside `roots` when given, else any file."""
    if len(text) > _MAX_PATH or "\x00" in text:
        raise ImageError("not an image: the text is too long for a file path and is not base64 image data")
    refusal = ImageError(
        f"unknown image {text[:80]!r}: give a store image id, a path to an image file in the folders this "
        "server may read, or base64 image data"
    )
    try:
        path = Path(text).expanduser()
        if roots is not None:
            path = path.resolve()
            if not any(path.is_relative_to(root) for root in roots):
                raise refusal
        exists = path.is_file()
    except OSError as error:  # a name too long for the OS, a symlink loop, an unreadable folder
        raise ImageError(
            f"not an image: {text[:60]!r} is neither a readable file, a store id nor base64 image data "
            f"({error.strerror})"
        ) from None
    except RuntimeError:
        raise refusal from None
    if not exists:
        if roots is not None:
            raise refusal
        raise ImageError(f"{text[:80]}: no such image file")
    return path


def _block_source(block: dict[str, Any], store: ImageStore) -> str:
    """The image a content block carries, as a string `import_image_input` reads (data URL, URL or store id).

    A ``file_id`` that names a store image wins over the block's base64: pixplan's own blocks (the chat's
    answers) carry a small preview as base64 and the full image as ``file_id``, and a client may send one back.
    """
    kind = block.get("type")
    if kind == "image_url":  # OpenAI's chat format
        inner = block.get("image_url")
        url = inner.get("url") if isinstance(inner, dict) else inner
        if not isinstance(url, str):
            raise ImageError("an image_url block needs image_url.url (a data URL)")
        return url
    if kind != "image":
        raise ImageError(f"not an image content block (type {kind!r}); use type 'image' or 'image_url'")
    mime = block.get("mime_type")
    if mime is not None and not str(mime).lower().startswith("image/"):
        raise ImageError(f"the image block's mime_type is {mime!r}, not an image")
    source_type = block.get("source_type")
    if source_type is not None:  # LangChain's older form: source_type base64 | url | id
        key = {"base64": "data", "url": "url", "id": "id"}.get(source_type)
        if key is None or not isinstance(block.get(key), str):
            raise ImageError(
                f"an image block with source_type {source_type!r} needs a string {key or 'data'!r}"
            )
        return _data_url(block[key], mime) if source_type == "base64" else block[key]
    if block.get("file_id") in store:
        return block["file_id"]
    for key in ("base64", "url", "file_id"):
        if isinstance(block.get(key), str):
            return _data_url(block[key], mime) if key == "base64" else block[key]
    raise ImageError("the image block has no image: give base64 (with mime_type), url or file_id")


def _data_url(data: str, mime: Any) -> str:
    return f"data:{mime or 'image/png'};base64,{data}"

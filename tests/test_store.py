"""The image store: loading guards, mode normalisation, content addressing and lineage."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from pixplan.tools.store import (
    ImageError,
    ImageStore,
    encode_png,
    open_image,
    pixel_hash,
    save_image,
    store_from_config,
)


def encoded(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    xs = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    ys = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([xs, ys, 255 - xs], axis=-1))


def leftover_files(store: ImageStore) -> list[str]:
    return sorted(path.name for path in store.root.iterdir())


# ------------------------------------------------------------------------------------------------ guards


def test_pixel_limit_refuses_decompression_bomb_before_decoding(store):
    bomb = encoded(Image.new("L", (4000, 4000)))  # 16 MP of zeros compresses to a few KB
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match="too large"):
        store.put_file(bomb, max_pixels=1_000_000)
    assert leftover_files(store) == []


def test_corrupt_data_is_a_clear_error(store, tmp_path):
    path = tmp_path / "corrupt.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    with pytest.raises(ImageError, match=r"corrupt|not a readable image"):
        store.put_file(path)
    assert leftover_files(store) == []


def test_truncated_file_is_a_clear_error(store):
    data = encoded(gradient(256, 256), "JPEG", quality=90)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        store.put_file(data[: len(data) // 2])
    assert leftover_files(store) == []


def test_empty_and_missing_files(store, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        store.put_file(empty)
    with pytest.raises(ImageError, match="no such image file"):
        store.put_file(tmp_path / "missing.png")
    assert leftover_files(store) == []


def test_unsupported_format_is_refused(store):
    data = encoded(gradient(), "ICO")  # Pillow reads ICO, pixplan does not accept it
    with pytest.raises(ImageError, match="unsupported format ICO"):
        store.put_file(data)
    with pytest.raises(ImageError, match="not a readable image"):
        store.put_file(b"%PDF-1.4 not an image at all")


def test_failed_write_leaves_no_half_written_file(store, monkeypatch):
    import pixplan.tools.store as store_module

    writes = []
    real_replace = store_module.os.replace

    def counting_replace(source, target):
        writes.append(target)
        raise OSError("disk full")

    monkeypatch.setattr(store_module.os, "replace", counting_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put(gradient())
    monkeypatch.setattr(store_module.os, "replace", real_replace)
    assert writes, "the write went through os.replace"
    assert leftover_files(store) == []  # the temporary file was removed


# ------------------------------------------------------------------------------------------------ modes


def test_exif_orientation_is_applied():
    image = gradient(60, 30)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    loaded = open_image(encoded(image, "JPEG", exif=exif, quality=95))
    assert loaded.size == (30, 60)
    expected = np.asarray(image.transpose(Image.Transpose.ROTATE_270), dtype=np.int16)
    assert np.abs(np.asarray(loaded, dtype=np.int16) - expected).mean() < 4


def test_palette_image_becomes_rgb_with_its_colours():
    palette = Image.new("P", (8, 8))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 0, 4, 8))
    loaded = open_image(encoded(palette, "GIF"))
    assert loaded.mode == "RGB"
    assert loaded.getpixel((0, 0)) == (0, 0, 255)
    assert loaded.getpixel((7, 0)) == (255, 0, 0)


def test_rgba_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    loaded = open_image(encoded(rgba))
    assert loaded.mode == "RGB"
    assert loaded.getpixel((0, 0)) == (255, 0, 0)
    assert loaded.getpixel((3, 3)) == (255, 255, 255)  # fully transparent: white, not the hidden red
    assert all(120 <= channel <= 135 for channel in loaded.getpixel((1, 0)))


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    loaded = open_image(encoded(cmyk, "JPEG", quality=95))
    red, green, blue = loaded.getpixel((8, 8))
    assert loaded.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_16_bit_image_keeps_its_range():
    values = np.linspace(0, 65535, 256, dtype=np.uint16)[None, :].repeat(4, 0)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    loaded = open_image(encoded(image))
    gray = np.asarray(loaded)[0, :, 0]
    assert loaded.mode == "RGB"
    assert gray[0] == 0 and gray[-1] == 255 and gray[128] in range(125, 131)


def test_16_bit_tiff_loads():
    values = (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)
    data = encoded(Image.fromarray(values), "TIFF")
    assert isinstance(Image.open(io.BytesIO(data)), TiffImagePlugin.TiffImageFile)
    assert open_image(data).getpixel((7, 7))[0] == round(63000 / 65535 * 255)


# ------------------------------------------------------------------------------------------------ store


def test_content_addressing_and_round_trip(store):
    image = gradient()
    first = store.put(image)
    second = store.put(image.copy())
    assert first["id"] == second["id"] == pixel_hash(image)
    assert (first["width"], first["height"]) == image.size
    assert np.array_equal(np.asarray(store.get(first["id"])), np.asarray(image))
    other = store.put(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert other["id"] != first["id"]
    # A second store on the same folder sees the same images (and decodes them from disk).
    again = ImageStore(store.root)
    assert first["id"] in again and again.ref(first["id"]) == first


def test_put_array_matches_put_image(store):
    pixels = np.asarray(gradient())
    ref = store.put_array(pixels)
    assert ref["id"] == pixel_hash(Image.fromarray(pixels))
    gray = np.asarray(gradient().convert("L"))
    assert store.put_array(gray)["id"] == pixel_hash(Image.fromarray(gray))
    stored = store.get_array(ref["id"])
    assert np.array_equal(stored, pixels) and not stored.flags.writeable
    with pytest.raises(ValueError, match="uint8"):
        store.put_array(pixels.astype(np.float32))


def test_cached_pixels_are_not_shared_with_the_caller(store):
    pixels = np.array(gradient())
    ref = store.put_array(pixels)
    pixels[:] = 0  # the caller goes on using its array
    assert np.asarray(store.get(ref["id"])).max() == 255
    got = store.get(ref["id"])
    got.paste((0, 0, 0), (0, 0, 10, 10))  # and the caller may change what it got
    assert store.get(ref["id"]).getpixel((0, 0)) == gradient().getpixel((0, 0)) == (0, 0, 255)


def test_other_modes_are_stored_as_they_are(store):
    mask = Image.new("1", (8, 8), 1)
    ref = store.put(mask)
    assert store.get(ref["id"]).mode == "1"
    assert store.get_array(ref["id"]).shape == (8, 8, 3)


def test_stored_png_is_a_valid_png(store):
    ref = store.put(gradient())
    with Image.open(store.path(ref["id"])) as image:
        assert image.format == "PNG"
        assert np.array_equal(np.asarray(image), np.asarray(gradient()))


def test_save_image_compresses(tmp_path):
    image = gradient(256, 256)
    path = save_image(image, tmp_path / "out" / "image.png")
    assert path.stat().st_size <= len(encode_png(image)) < 256 * 256 * 3 / 2
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(image))


def test_lineage_and_root(store):
    original = store.put(gradient())
    child = store.put(gradient(64, 47), parent=original["id"], tool="crop", args={"box": [0, 0, 1, 0.98]})
    grandchild = store.put(gradient(63, 47), parent=child["id"], tool="crop", args={"box": [0, 0, 0.98, 1]})
    chain = store.lineage(grandchild["id"])
    assert [ref["id"] for ref in chain] == [original["id"], child["id"], grandchild["id"]]
    assert chain[1]["tool"] == "crop" and chain[1]["args"] == {"box": [0, 0, 1, 0.98]}
    assert store.root_of(grandchild["id"]) == original["id"]
    assert store.ref(original["id"])["parent"] is None


def test_unknown_ids(store):
    with pytest.raises(KeyError, match="unknown image id"):
        store.get("nope")
    with pytest.raises(KeyError, match="unknown image id"):
        store.ref("nope")
    assert "nope" not in store and 3 not in store


def test_json_documents(store):
    assert store.get_json("missing") is None
    store.put_json("catalog-x", {"regions": [1, 2]})
    assert store.get_json("catalog-x") == {"regions": [1, 2]}


def test_store_from_config(tmp_path, monkeypatch):
    assert store_from_config({"configurable": {"store_dir": str(tmp_path / "a")}}).root == tmp_path / "a"
    monkeypatch.setenv("PIXPLAN_STORE", str(tmp_path / "b"))
    assert store_from_config(None).root == tmp_path / "b"
    assert store_from_config({"configurable": {}}).root == tmp_path / "b"

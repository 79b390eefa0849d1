"""Image decoding: every odd input becomes RGB or a clear error."""

import io

import numpy as np
import pytest
from PIL import Image

from livr_viz.core.errors import LIVRError
from livr_viz.core.images import MAX_PIXELS, load_image


def _bytes(image, fmt, **kw):
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_corrupt_truncated_and_non_image_bytes(tmp_path):
    png = _bytes(Image.new("RGB", (32, 32), "red"), "PNG")
    for data in (png[: len(png) // 2], b"\x89PNG\r\n\x1a\n" + b"\0" * 50, b"GIF89a nonsense", b"hello world"):
        with pytest.raises(LIVRError, match="cannot be decoded"):
            load_image(data)
    fake = tmp_path / "photo.jpg"
    fake.write_bytes(b"not a jpeg")
    with pytest.raises(LIVRError, match="cannot be decoded"):
        load_image(fake)
    with pytest.raises(LIVRError, match="empty"):
        load_image(b"")


def test_decompression_bomb_is_refused():
    image = Image.new("1", (8000, 8000))
    data = _bytes(image, "PNG")
    with pytest.raises(LIVRError, match="exceeds the limit"):
        load_image(data)
    assert MAX_PIXELS < 8000 * 8000


def test_modes_are_converted_to_rgb():
    sixteen = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    cmyk = Image.new("CMYK", (20, 20), (0, 255, 255, 0))
    palette = Image.new("P", (20, 20))
    palette.putpalette([255, 0, 0] * 256)
    frames = [Image.new("RGB", (10, 10), c) for c in ("red", "blue")]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    for source in (
        _bytes(sixteen, "PNG"),
        _bytes(cmyk, "JPEG"),
        _bytes(palette, "PNG", transparency=0),
        gif.getvalue(),
        Image.new("LA", (5, 5)),
        np.zeros((4, 4), np.float32),
    ):
        out = load_image(source)
        assert out.mode == "RGB"
    red = load_image(gif.getvalue())
    assert red.getpixel((0, 0))[0] > 200  # first frame


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), "white")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = load_image(_bytes(image, "JPEG", exif=exif))
    assert out.size == (20, 40)


def test_extreme_sizes_are_accepted():
    assert load_image(Image.new("RGB", (1, 1))).size == (1, 1)
    assert load_image(_bytes(Image.new("RGB", (8000, 100)), "PNG")).size == (8000, 100)


def test_big_uploads_are_downscaled_once_at_decode(tmp_path):
    from livr_viz.core.images import load_image

    path = tmp_path / "huge.jpg"
    Image.new("RGB", (6000, 4000), (200, 30, 30)).save(path, quality=80)
    small = load_image(path, max_side=768)
    assert max(small.size) == 768 and small.size[0] / small.size[1] == pytest.approx(1.5, abs=0.01)
    assert load_image(path).size == (6000, 4000)  # without max_side nothing changes
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (40, 30)).save(tiny)
    assert load_image(tiny, max_side=768).size == (40, 30)  # never upscaled


def test_errors_name_the_file_by_its_base_name_only(tmp_path):
    from livr_viz.core.errors import LIVRError
    from livr_viz.core.images import load_image

    fake = tmp_path / "deep" / "gradio" / "0a1b2c" / "cat.png"
    fake.parent.mkdir(parents=True)
    fake.write_text("this is a text file named like an image")
    with pytest.raises(LIVRError) as exc:
        load_image(fake)
    message = str(exc.value)
    assert "'cat.png'" in message and str(tmp_path) not in message and "0x" not in message and "BytesIO" not in message
    with pytest.raises(LIVRError) as exc:
        load_image(b"\x89PNG\r\n\x1a\n broken")
    assert "the uploaded image" in str(exc.value) and "0x" not in str(exc.value)

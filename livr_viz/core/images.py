"""Safe image decoding: every input becomes an RGB PIL image or a clear LIVRError.

Defined handling (documented in the README):
* EXIF orientation is applied (phones store rotated pixels plus a tag);
* animated images use their first frame;
* palette / transparent images are composited on white; 16-bit and CMYK are converted to 8-bit RGB;
* images above ``MAX_PIXELS`` (decompression bombs) and below 1x1 are refused; extreme aspect ratios are
  accepted (the processor resizes) — tiny 1x1 images are upsampled by the processor like any other;
* ``max_side`` downscales once at decode time (JPEGs are decoded at a reduced scale straight away): the model's
  processor decides what the model sees (96 px for the demo model), the views never need more than ~768 px, and
  a 6000 x 6000 upload would otherwise be carried, blended and drawn at full size;
* errors name a file by its base name only (never a temporary upload path or an in-memory object).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from livr_viz.core.errors import LIVRError

MAX_PIXELS = 40_000_000  # ~ 6300 x 6300; larger headers are refused before decoding
MAX_BYTES = 50 * 1024 * 1024


def load_image(source, name: str | None = None, max_side: int | None = None) -> Image.Image:
    """Decode ``source`` (path, bytes, numpy array or PIL image) to RGB, at most ``max_side`` pixels on its
    longer side when given (aspect ratio kept)."""
    label = repr(name or (Path(source).name if isinstance(source, (str, Path)) else "the uploaded image"))
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim not in (2, 3):
            raise LIVRError(f"image {label}: array must be HxW or HxWxC, got shape {source.shape}")
        array = source
        if array.dtype != np.uint8:
            array = np.clip(array, 0, 255).astype(np.uint8) if array.max() > 1.0 else (array * 255).astype(np.uint8)
        image = Image.fromarray(array)
    else:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise LIVRError(f"image file not found: {path.name}")
            if path.stat().st_size > MAX_BYTES:
                raise LIVRError(f"image {label}: file is larger than {MAX_BYTES // 2**20} MB")
            data = path.read_bytes()
        elif isinstance(source, (bytes, bytearray)):
            data = bytes(source)
        else:
            raise LIVRError(f"cannot read an image from a {type(source).__name__}")
        if not data:
            raise LIVRError(f"image {label}: the file is empty")
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise LIVRError(
                    f"image {label}: {image.width}x{image.height} pixels exceeds the limit of {MAX_PIXELS:,} "
                    "(possible decompression bomb); resize it first"
                )
            if max_side and image.format == "JPEG":
                image.draft("RGB", (max_side, max_side))  # decode at 1/2, 1/4 or 1/8 scale: fast, little memory
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image.load()
        except LIVRError:
            raise
        except UnidentifiedImageError:
            raise LIVRError(
                f"image {label} cannot be decoded: it is not an image file in a format we read "
                "(PNG, JPEG, GIF, BMP, TIFF, WebP)"
            ) from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            reason = str(exc).split(" at 0x")[0].split("/")[0].strip() or "damaged data"
            raise LIVRError(f"image {label} cannot be decoded ({type(exc).__name__}: {reason})") from None
    if image.width < 1 or image.height < 1:
        raise LIVRError(f"image {label}: empty image ({image.width}x{image.height})")
    if image.width * image.height > MAX_PIXELS:
        raise LIVRError(f"image {label}: {image.width}x{image.height} pixels exceeds the limit of {MAX_PIXELS:,}")
    image = to_rgb(image)
    if max_side and max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    if getattr(image, "is_animated", False):
        image.seek(0)
    image = ImageOps.exif_transpose(image) or image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        hi = array.max() or 1.0
        image = Image.fromarray((array / max(hi, 255.0 if hi <= 255 else 65535.0) * 255).astype(np.uint8))
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(array * (255 if array.max() <= 1 else 1), 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        return background
    return image.convert("RGB")

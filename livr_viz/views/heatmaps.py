"""Heatmaps as pictures: the image at display size, a map blended over it, a panel per latent."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402


def display_image(image: Image.Image, size: int = 192) -> Image.Image:
    """Upscale small images by an integer factor (nearest) so overlays stay crisp; large ones pass through."""
    scale = max(1, size // max(image.size)) if max(image.size) < size else 1
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST) if scale > 1 else image


def overlay(image: Image.Image, heat: np.ndarray, opacity: float = 0.55, cmap: str = "inferno") -> np.ndarray:
    """RGB uint8 array of ``image`` with ``heat`` (values in [0, 1], any grid) upsampled and blended."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    heat_img = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize(image.size, Image.BILINEAR)
    colour = plt.get_cmap(cmap)(np.asarray(heat_img, dtype=np.float32) / 255.0)[..., :3]
    return (np.clip((1 - opacity) * base + opacity * colour, 0, 1) * 255).astype(np.uint8)


def latent_grid_figure(image: Image.Image, maps: np.ndarray, title: str = "", opacity: float = 0.55,
                       labels: Sequence[str] | None = None, columns: int = 8):
    """K-panel figure: each latent's map overlaid on the image, plus the image itself first."""
    k = len(maps)
    columns = max(1, min(columns, k + 1))
    n_rows = int(np.ceil((k + 1) / columns))
    fig, axes = plt.subplots(n_rows, columns, figsize=(1.6 * columns, 1.75 * n_rows + (0.3 if title else 0)))
    axes = np.atleast_1d(axes).ravel()
    axes[0].imshow(image)
    axes[0].set_title("image", fontsize=8)
    for i in range(k):
        axes[i + 1].imshow(overlay(image, maps[i], opacity))
        axes[i + 1].set_title(labels[i] if labels else f"latent {i}", fontsize=8)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def montage(tiles: list[tuple[Image.Image, str]], columns: int = 8, tile: int = 96, title: str = "") -> Image.Image:
    """One image of labelled tiles (for side-by-side comparison and export)."""
    rows = -(-len(tiles) // columns)
    head = 14 if title else 0
    sheet = Image.new("RGB", (columns * tile, head + rows * (tile + 12)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((3, 1), title, fill=(0, 0, 0))
    for i, (img, caption) in enumerate(tiles):
        x, y = (i % columns) * tile, head + (i // columns) * (tile + 12)
        sheet.paste(img.resize((tile - 2, tile - 2)), (x + 1, y + 12))
        draw.text((x + 2, y), caption, fill=(0, 0, 0))
    return sheet


def stack(sheets: list[Image.Image], gap: int = 6, top: int = 0) -> Image.Image:
    """Sheets one under another on a white page (left-aligned), so variants are compared at the same scale;
    ``top`` leaves a margin (the app's image label covers the page's top-left corner)."""
    width = max(s.width for s in sheets)
    page = Image.new("RGB", (width, top + sum(s.height for s in sheets) + gap * (len(sheets) - 1)), (255, 255, 255))
    y = top
    for s in sheets:
        page.paste(s, (0, y))
        y += s.height + gap
    return page


def evidence_overlay(image: Image.Image, evidence: np.ndarray) -> Image.Image:
    base = display_image(image)
    return Image.fromarray(overlay(base, evidence.astype(float), 0.45, cmap="Greens"))

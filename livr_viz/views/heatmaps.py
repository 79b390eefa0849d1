"""Heatmaps as pictures: the image at display size, a map blended over it, a panel per latent."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter, ImageFont  # noqa: E402

from livr_viz.views.figures import subplots


def label_font(size: int | None = None):
    """PIL's bundled font: the small bitmap one by default (the app's 192-px tiles), a scalable one at ``size`` px
    for pictures shown smaller than drawn (the Compare sheet) or larger (an enlarged tile), so text stays legible."""
    return ImageFont.load_default(size) if size else ImageFont.load_default()


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


def latent_grid_figure(
    image: Image.Image,
    maps: np.ndarray,
    title: str = "",
    opacity: float = 0.55,
    labels: Sequence[str] | None = None,
    columns: int = 8,
):
    """K-panel figure: each latent's map overlaid on the image, plus the image itself first."""
    k = len(maps)
    columns = max(1, min(columns, k + 1))
    n_rows = int(np.ceil((k + 1) / columns))
    fig, axes = subplots(n_rows, columns, figsize=(1.6 * columns, 1.75 * n_rows + (0.3 if title else 0)))
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


def montage(
    tiles: list[tuple[Image.Image, str]],
    columns: int = 8,
    tile: int = 96,
    title: str = "",
    font_size: int | None = None,
) -> Image.Image:
    """One image of labelled tiles (for side-by-side comparison and export): each ``tile`` px wide, its aspect
    kept, captioned with the caption's first part (``latent 3`` of ``latent 3 · image 26% · …``); ``font_size``
    for a sheet shown smaller than drawn (tiles already ``tile`` px wide are pasted as they are, not resampled)."""
    font = label_font(font_size)
    line = (font_size or 8) + 4
    rows = -(-len(tiles) // columns)
    height = max((round((tile - 2) * img.height / img.width) for img, _ in tiles), default=tile)
    head = line + 2 if title else 0
    sheet = Image.new("RGB", (columns * tile, head + rows * (height + line)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((3, 1), title, fill=(0, 0, 0), font=font)
    for i, (img, caption) in enumerate(tiles):
        x, y = (i % columns) * tile, head + (i // columns) * (height + line)
        if img.width != tile - 2:
            img = img.resize((tile - 2, round((tile - 2) * img.height / img.width)), Image.LANCZOS)
        sheet.paste(img, (x + 1, y + line))
        draw.text((x + 2, y), caption.split(" · ")[0], fill=(0, 0, 0), font=font)
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


SPLIT_COLOURS = {"image": (76, 155, 232), "text": (140, 140, 140), "latent": (232, 163, 60)}  # as in the token map
SCALE_NAMES = {"per_latent": "per-latent scale", "global": "shared scale", "none": "absolute"}


def evidence_outline(mask: np.ndarray, size: tuple[int, int], width: int = 2) -> np.ndarray:
    """``[H, W]`` bool: the border of the evidence mask, drawn ``width`` pixels wide at display ``size`` (w, h)."""
    big = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).resize(size, Image.NEAREST)
    grown = big.filter(ImageFilter.MaxFilter(2 * width + 1))
    return (np.asarray(grown) > 0) & ~(np.asarray(big) > 0)


def grid_overlay(
    image: Image.Image,
    heat: np.ndarray,
    evidence: np.ndarray | None = None,
    opacity: float = 0.55,
    size: int = 192,
    cmap: str = "inferno",
) -> Image.Image:
    """``heat`` (values in [0, 1], one cell per patch) drawn crisp over the image at ``size`` px wide, with the
    evidence's border in green."""
    shown = image.convert("RGB").resize((size, round(size * image.height / image.width)), Image.LANCZOS)
    w, h = shown.size
    cells = Image.fromarray((np.clip(heat, 0, 1) * 255).astype(np.uint8)).resize((w, h), Image.NEAREST)
    colour = plt.get_cmap(cmap)(np.asarray(cells, dtype=np.float32) / 255.0)[..., :3]
    base = np.asarray(shown, dtype=np.float32) / 255.0
    pixels = np.clip((1 - opacity) * base + opacity * colour, 0, 1)
    if evidence is not None:
        pixels[evidence_outline(evidence, (w, h))] = (0.2, 1.0, 0.3)
    return Image.fromarray((pixels * 255).astype(np.uint8))


def attention_tile(
    image: Image.Image,
    heat: np.ndarray,
    raw_max: float,
    normalisation: str = "per_latent",
    split: Sequence[float] | None = None,
    evidence: np.ndarray | None = None,
    opacity: float = 0.55,
    size: int = 192,
    cmap: str = "inferno",
    font_size: int | None = None,
) -> Image.Image:
    """One latent's map as a picture that tells its scale: the patch grid drawn crisp (one flat cell per patch,
    no interpolation) over the image at ``size`` px, the ground-truth evidence outlined in green, a colour bar
    underneath labelled with its scale (``per_latent``: 0 … this latent's own maximum; ``global``: shared by all
    tiles; ``none``: absolute attention, 0 … 1), and on top a stacked bar of where this row's attention goes (image /
    text / latents: a map that looks focused but spends 2 % on the image shows it). ``font_size`` draws the scale's
    labels that large (the scale's name is left out where it does not fit between its two numbers)."""
    grid = grid_overlay(image, heat, evidence, opacity, size, cmap)
    w, h = grid.size
    font = label_font(font_size)
    bar_h, scale_h, text_h = max(10, (font_size or 0) // 2), max(8, (font_size or 0) // 2), (font_size or 8) + 4
    caption_h = 16  # blank room for a gallery's caption overlay, so it never hides the colour bar
    tile = Image.new("RGB", (w, bar_h + h + scale_h + text_h + caption_h), (255, 255, 255))
    tile.paste(grid, (0, bar_h))
    draw = ImageDraw.Draw(tile)
    if split is not None:
        x = 0.0
        for rgb, share in zip(SPLIT_COLOURS.values(), split):
            draw.rectangle([round(x), 1, round(x + share * w), bar_h - 2], fill=rgb)
            x += share * w
    ramp = (plt.get_cmap(cmap)(np.linspace(0, 1, w))[:, :3] * 255).astype(np.uint8)
    tile.paste(Image.fromarray(np.repeat(ramp[None], scale_h, 0)), (0, bar_h + h))
    top = f"{raw_max:.3g}" if normalisation != "none" else "1"  # absolute: attention is a probability
    y = bar_h + h + scale_h
    draw.text((1, y), "0", fill=(0, 0, 0), font=font)
    name = SCALE_NAMES[normalisation]
    room = w - draw.textlength("0", font=font) - draw.textlength(top, font=font) - 8
    if draw.textlength(name, font=font) <= room:
        draw.text(((w - draw.textlength(name, font=font)) / 2, y), name, fill=(90, 90, 90), font=font)
    draw.text((w - draw.textlength(top, font=font) - 1, y), top, fill=(0, 0, 0), font=font)
    return tile

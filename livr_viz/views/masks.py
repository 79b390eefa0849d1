"""Draw the attention mask of an input as a matrix coloured by segment (a teaching view)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from livr_viz.core.masks import allowed_attention
from livr_viz.core.segments import Segment
from livr_viz.views.figures import subplots

SEGMENT_COLOURS = {
    Segment.PAD: "#dddddd",
    Segment.IMAGE: "#4c9be8",
    Segment.TEXT: "#8c8c8c",
    Segment.LATENT: "#e8a33c",
    Segment.ANSWER: "#3cb371",
}


def mask_figure(
    segments: torch.Tensor,
    stage: str = "bottleneck",
    block_latent_image: bool = False,
    max_tokens: int = 160,
    title: str | None = None,
):
    """Figure of one row's ``[T, T]`` mask: allowed cells take the key's segment colour, blocked cells are white.

    Long image runs are subsampled to ``max_tokens`` positions (keeping every segment visible).
    """
    seg = segments[0] if segments.dim() == 2 else segments
    keep = torch.arange(len(seg))
    if len(seg) > max_tokens:  # thin out the image run, keep all other tokens
        image = (seg == int(Segment.IMAGE)).nonzero().flatten()
        other = (seg != int(Segment.IMAGE)).nonzero().flatten()
        n_img = max(4, max_tokens - len(other))
        keep = torch.cat([other, image[torch.linspace(0, len(image) - 1, n_img).long()]]).sort().values
    allowed = allowed_attention(seg.unsqueeze(0), stage, block_latent_image)[0][keep][:, keep]
    kept = seg[keep]
    n = len(kept)
    colour_index = np.where(allowed.numpy(), kept.numpy()[None, :] + 1, 0)
    # a strip along the top (each key's segment) and the left (each query's), a white gap between: short runs such
    # as the answer's two or three tokens are seen as bands, not only as a cell or two on the diagonal
    band, gap = max(2, n // 30), 1
    pad = band + gap
    framed = np.zeros((n + pad, n + pad), dtype=colour_index.dtype)
    framed[pad:, pad:] = colour_index
    framed[:band, pad:] = kept.numpy()[None, :] + 1
    framed[pad:, :band] = kept.numpy()[:, None] + 1
    cmap = ListedColormap(["#ffffff"] + [SEGMENT_COLOURS[s] for s in Segment])
    fig, ax = subplots(figsize=(5.2, 5.2))
    ax.imshow(
        framed,
        cmap=cmap,
        vmin=0,
        vmax=len(Segment),
        interpolation="nearest",
        extent=(-pad - 0.5, n - 0.5, n - 0.5, -pad - 0.5),
    )  # tick positions stay token positions
    ax.set_xlim(-pad - 0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -pad - 0.5)
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position (attending)")
    ax.set_title(title or f"{stage} mask" + (" (latent→image cut)" if block_latent_image else ""))
    ax.legend(
        handles=[Patch(color=SEGMENT_COLOURS[s], label=s.name.lower()) for s in Segment if s != Segment.PAD]
        + [Patch(facecolor="#ffffff", edgecolor="#999999", label="blocked")],
        loc="upper right",
        fontsize=8,
        bbox_to_anchor=(0.995, 1 - (pad + 1) / (n + pad)),
    )  # in the blocked triangle, under the key strip
    fig.tight_layout()
    return fig

"""Draw the attention mask of an input as a matrix coloured by segment (a teaching view)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from livr_viz.core.masks import allowed_attention
from livr_viz.core.segments import Segment

SEGMENT_COLOURS = {Segment.PAD: "#dddddd", Segment.IMAGE: "#4c9be8", Segment.TEXT: "#8c8c8c",
                   Segment.LATENT: "#e8a33c", Segment.ANSWER: "#3cb371"}


def mask_figure(segments: torch.Tensor, stage: str = "bottleneck", block_latent_image: bool = False,
                max_tokens: int = 160, title: str | None = None):
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
    colour_index = np.where(allowed.numpy(), kept.numpy()[None, :] + 1, 0)
    cmap = ListedColormap(["#ffffff"] + [SEGMENT_COLOURS[s] for s in Segment])
    fig, ax = plt.subplots(figsize=(5.2, 5.2))
    ax.imshow(colour_index, cmap=cmap, vmin=0, vmax=len(Segment), interpolation="nearest")
    ax.set_xlabel("key position (attended to)")
    ax.set_ylabel("query position (attending)")
    ax.set_title(title or f"{stage} mask" + (" (latent→image cut)" if block_latent_image else ""))
    ax.legend(handles=[Patch(color=SEGMENT_COLOURS[s], label=s.name.lower()) for s in Segment if s != Segment.PAD]
              + [Patch(facecolor="#ffffff", edgecolor="#999999", label="blocked")], loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig

"""Is the answer of the panel-comparison tasks already in the image features?  A training-free check.

For ``visual_similarity`` and ``art_style`` (reference panel on top, candidates A left and B right), each panel is
summarised by the mean of the features of the patches whose centre lies inside it, and the candidate closer to the
reference (cosine) is the prediction.  Three feature spaces: raw pixels of each 12 px patch, the vision tower's
output and the projector's output (what the language model reads).  If the tower's features already answer well
above chance while the trained language model stays at 50 %, the comparison circuit in the language model is what is
missing, not the features.

    python tools/experiments/panel_similarity.py --model assets/demo-base --n 200
"""

import argparse

import numpy as np
import torch

from livr_viz.core.model import load_backbone
from livr_viz.data import draw as D
from livr_viz.data import make_sample

TASKS = ("visual_similarity", "art_style")


def panel_patches(size: int, grid: int, box) -> np.ndarray:
    """Indices of the ``grid`` x ``grid`` patches whose centre lies inside ``box``."""
    step = size / grid
    centres = (np.arange(grid) + 0.5) * step
    x0, y0, x1, y1 = box
    rows = np.flatnonzero((centres >= y0) & (centres < y1))
    cols = np.flatnonzero((centres >= x0) & (centres < x1))
    return (rows[:, None] * grid + cols[None, :]).ravel()


def accuracy(feats: np.ndarray, boxes_idx: list[np.ndarray], answers: list[int]) -> float:
    hits = []
    for f, idx, ans in zip(feats, boxes_idx, answers):
        ref, a, b = (f[i].mean(0) for i in idx)
        cos = [float(ref @ c / (np.linalg.norm(ref) * np.linalg.norm(c) + 1e-9)) for c in (a, b)]
        hits.append(int(np.argmax(cos)) == ans)
    return 100.0 * float(np.mean(hits))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="assets/demo-base")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args(argv)
    model, processor = load_backbone(a.model)
    cfg = model.config.vision_config
    size, grid = cfg.image_size, cfg.image_size // cfg.patch_size
    model.eval()
    for task in TASKS:
        samples = [make_sample(task, "test", a.seed, i) for i in range(a.n)]
        answers = ["AB".index(s.answer) for s in samples]
        # the layout depends only on the canvas size: one set of panel boxes serves every sample
        _, boxes = D.compose_panels(
            [samples[0].panels[k] for k in ("reference", "A", "B")], ["REF", "A", "B"], size, layout="ref_top"
        )
        idx = [[panel_patches(size, grid, b) for b in boxes]] * len(samples)
        px = np.stack([np.asarray(s.image, np.float32) / 255.0 for s in samples])  # [N, H, W, 3]
        p = cfg.patch_size
        raw = (
            px.reshape(len(samples), grid, p, grid, p, 3)
            .transpose(0, 1, 3, 2, 4, 5)
            .reshape(len(samples), grid * grid, -1)
        )
        with torch.no_grad():
            pixels = processor.image_processor([s.image for s in samples], return_tensors="pt")["pixel_values"]
            hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[
                model.config.vision_feature_layer
            ]
            if model.config.vision_feature_select_strategy == "default":  # drop CLS, as LLaVA does
                hidden = hidden[:, 1:]
            projected = model.model.multi_modal_projector(hidden)
        row = {
            "raw pixels": accuracy(raw, idx, answers),
            "tower": accuracy(hidden.numpy(), idx, answers),
            "projector": accuracy(projected.numpy(), idx, answers),
        }
        print(task, {k: round(v, 1) for k, v in row.items()}, f"(n={a.n}, chance 50)")


if __name__ == "__main__":
    main()

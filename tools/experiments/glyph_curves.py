"""How fast does a vision tower learn to tell drawn letters apart?  The experiment behind RESULTS.md's letter notes.

Trains ``--init``'s vision tower and a linear head on plain letter sheets only (4 random letters of A–D per image,
the tasks' fonts and colours; labels from :func:`livr_viz.training.vision_pretrain.glyph_labels`), constant lr, and
prints the letter-identity accuracy on the patches that hold a letter, per training batch.  Nothing is saved.

    python tools/experiments/glyph_curves.py --init runs/demo/init --steps 1500
"""

import argparse

import numpy as np
import torch
from PIL import Image

from livr_viz.core.model import load_backbone
from livr_viz.data import draw as D
from livr_viz.training.vision_pretrain import GLYPHS, draw_glyphs, glyph_labels, glyph_losses, letter_accuracy


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True, help="LLaVA-family backbone directory")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--every", type=int, default=25)
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    model, processor = load_backbone(a.init)
    tower = model.model.vision_tower
    grid = tower.config.image_size // tower.config.patch_size
    head = torch.nn.Linear(tower.config.hidden_size, 1 + len(GLYPHS))
    params = list(tower.parameters()) + list(head.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=a.lr)
    rng = np.random.default_rng(0)
    for step in range(a.steps):
        images, labels = [], []
        for _ in range(a.batch_size):
            image = Image.new("RGB", (tower.config.image_size,) * 2, D.BACKGROUND)
            labels.append(glyph_labels(*draw_glyphs(image, rng, 4), grid))
            images.append(image)
        y = torch.from_numpy(np.stack(labels))
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
        logits = head(tower(pixels, output_hidden_states=True).hidden_states[model.config.vision_feature_layer][:, 1:])
        loss = sum(glyph_losses(logits, y, letter_weight=1.0).values())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if step % a.every == 0 or step + 1 == a.steps:
            print(
                f"step {step} loss {loss.item():.3f} letter accuracy {letter_accuracy(logits.detach(), y):.3f} "
                f"({int((y > 0).sum())} patches)",
                flush=True,
            )


if __name__ == "__main__":
    main()

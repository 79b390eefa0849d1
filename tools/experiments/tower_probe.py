"""Does a backbone's vision tower still encode what stage 0 taught it?  A linear probe per backbone.

For each backbone directory: tower features (the layer LLaVA's projector reads, CLS dropped) and projector outputs
of the patches covered by the one coloured shape of perception ``shape`` questions, a logistic regression fitted on
600 training images and scored on 300 validation images (6 shape classes).  Example:

    python tools/experiments/tower_probe.py runs/demo/vision/model runs/demo/pretrain-colour/model
"""

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from livr_viz.core.model import load_backbone
from livr_viz.data.perception import make_perception_sample
from livr_viz.training.vision_pretrain import _vision_geometry, patch_targets


@torch.no_grad()
def shape_patches(path: str, split: str, n: int, seed: int) -> dict[str, np.ndarray]:
    model, processor = load_backbone(path)
    _, grid = _vision_geometry(model)
    tower, layer = model.model.vision_tower, model.config.vision_feature_layer
    drop_cls = model.config.vision_feature_select_strategy == "default"
    out = {"tower": [], "projector": [], "label": []}
    for i in range(n):
        s = make_perception_sample("shape", split, seed, i)
        labels = patch_targets(s.image, grid, s.concepts)["shape"]
        pixels = processor.image_processor([s.image], return_tensors="pt")["pixel_values"]
        h = tower(pixels, output_hidden_states=True).hidden_states[layer][0]
        h = h[1:] if drop_cls else h
        keep = torch.from_numpy(labels >= 0)
        out["tower"].append(h[keep].numpy())
        out["projector"].append(model.model.multi_modal_projector(h)[keep].numpy())
        out["label"].append(labels[labels >= 0])
    return {k: np.concatenate(v) for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("backbones", nargs="+", help="backbone directories (LLaVA family)")
    ap.add_argument("--n-train", type=int, default=600)
    ap.add_argument("--n-val", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5, help="data seed of the probe's images")
    a = ap.parse_args(argv)
    for path in a.backbones:
        train = shape_patches(path, "train", a.n_train, a.seed)
        val = shape_patches(path, "val", a.n_val, a.seed)
        majority = np.bincount(val["label"]).max() / len(val["label"])
        for where in ("tower", "projector"):
            scale = StandardScaler().fit(train[where])
            clf = LogisticRegression(max_iter=3000).fit(scale.transform(train[where]), train["label"])
            acc = clf.score(scale.transform(val[where]), val["label"])
            print(f"{path}\t{where}\tshape probe {acc:.3f}\t(majority {majority:.3f}, {len(val['label'])} val patches)",
                  flush=True)


if __name__ == "__main__":
    main()

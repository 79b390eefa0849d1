"""Does a backbone's vision tower still encode what stage 0 taught it?  A linear probe per backbone.

For each backbone directory: tower features (the layer LLaVA's projector reads, CLS dropped) and projector outputs
of selected patches, a standardised logistic regression fitted on training images and scored on validation images.

* ``--concept shape`` (default): the patches covered by the one coloured shape of perception ``shape`` questions,
  labelled with its shape (6 classes);
* ``--concept ring``: the patches of ``marker_on_shape`` questions that hold one option ring's colour (at least a
  twelfth of the patch, stage 0's ``present`` label), labelled with that colour (4 classes).

Examples (the second is docs/experiments/frozen-tower/'s ring probe):

    python tools/experiments/tower_probe.py runs/demo/vision/model runs/demo/pretrain-colour/model
    python tools/experiments/tower_probe.py runs/demo/vision/model --concept ring --seed 3 --n-train 300 --n-val 150
"""

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from livr_viz.core.model import load_backbone
from livr_viz.data import draw as D
from livr_viz.data.perception import make_perception_sample
from livr_viz.data.tasks import MARKER_WORDS
from livr_viz.training.vision_pretrain import _vision_geometry, patch_targets

MARKERS = [list(D.PALETTE).index(w) for w in MARKER_WORDS]  # the option rings' columns of the ``present`` label
KINDS = {"shape": "shape", "ring": "marker_on_shape"}


def patch_labels(sample, grid: int, concept: str) -> np.ndarray:
    """Per patch: the concept's class, -1 where the patch is not probed."""
    t = patch_targets(sample.image, grid, sample.concepts)
    if concept == "shape":
        return np.where(t["shape"] >= 0, t["shape"], -1)
    rings = t["present"][:, MARKERS]
    return np.where(rings.sum(1) == 1, rings.argmax(1), -1)


@torch.no_grad()
def probe_data(model, processor, concept: str, split: str, n: int, seed: int) -> dict[str, np.ndarray]:
    _, grid = _vision_geometry(model)
    tower, layer = model.model.vision_tower, model.config.vision_feature_layer
    drop_cls = model.config.vision_feature_select_strategy == "default"
    out = {"tower": [], "projector": [], "label": []}
    for i in range(n):
        s = make_perception_sample(KINDS[concept], split, seed, i)
        labels = patch_labels(s, grid, concept)
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
    ap.add_argument("--concept", choices=sorted(KINDS), default="shape")
    ap.add_argument("--n-train", type=int, default=600)
    ap.add_argument("--n-val", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5, help="data seed of the probe's images")
    a = ap.parse_args(argv)
    for path in a.backbones:
        model, processor = load_backbone(path)
        train = probe_data(model, processor, a.concept, "train", a.n_train, a.seed)
        val = probe_data(model, processor, a.concept, "val", a.n_val, a.seed)
        majority = np.bincount(val["label"]).max() / len(val["label"])
        for where in ("tower", "projector"):
            scale = StandardScaler().fit(train[where])
            clf = LogisticRegression(max_iter=3000).fit(scale.transform(train[where]), train["label"])
            acc = clf.score(scale.transform(val[where]), val["label"])
            print(
                f"{path}\t{where}\t{a.concept} probe {acc:.3f}\t(majority {majority:.3f}, {len(val['label'])} val "
                "patches)",
                flush=True,
            )


if __name__ == "__main__":
    main()

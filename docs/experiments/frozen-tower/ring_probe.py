"""Can a linear probe read which marker colour's ring is in a patch where a shape dominates? (marker_on_shape)"""
import sys

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from livr_viz.core.model import load_backbone
from livr_viz.data import draw as D
from livr_viz.data.perception import make_perception_sample
from livr_viz.data.tasks import MARKER_WORDS

torch.set_num_threads(2)
pal = {w: np.array(D.PALETTE[w]) for w in MARKER_WORDS}
def data(model, proc, split, n):
    X, Y = [], []
    tower, layer = model.model.vision_tower, model.config.vision_feature_layer
    for i in range(n):
        s = make_perception_sample("marker_on_shape", split, 3, i)
        a = np.asarray(s.image.convert("RGB"), dtype=np.int32)
        with torch.no_grad():
            h = tower(proc.image_processor([s.image], return_tensors="pt")["pixel_values"], output_hidden_states=True).hidden_states[layer][0, 1:]
        for k in range(64):
            r, c = divmod(k, 8)
            patch = a[r*12:(r+1)*12, c*12:(c+1)*12]
            counts = [int((patch == pal[w]).all(-1).sum()) for w in MARKER_WORDS]
            present = [j for j, v in enumerate(counts) if v >= 12]
            if len(present) == 1:
                X.append(h[k].numpy()); Y.append(present[0])
    return np.array(X), np.array(Y)
for path in sys.argv[1:]:
    model, proc = load_backbone(path)
    Xt, Yt = data(model, proc, "train", 300); Xv, Yv = data(model, proc, "val", 150)
    sc = StandardScaler().fit(Xt)
    acc = LogisticRegression(max_iter=3000).fit(sc.transform(Xt), Yt).score(sc.transform(Xv), Yv)
    print(path, "ring colour probe", round(acc, 3), "n", len(Yv), "majority", round(np.bincount(Yv).max()/len(Yv), 3), flush=True)

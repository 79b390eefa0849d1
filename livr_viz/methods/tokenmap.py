"""Token maps: 2-D projections (t-SNE, UMAP) of hidden states, coloured by segment, task or concept.

Projections are cached by a hash of the input matrix and the settings (in memory, in a bounded LRU, and, if a cache
directory is given, as ``.npz`` on disk), so the app redraws instantly when only colours or filters change.
UMAP pays a numba compilation on its first call in a process; :func:`warm_up_umap` does that off the
request path.  High-dimensional inputs are first reduced to 50 dims with PCA.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livr_viz.core.capture import LatentAttention
from livr_viz.core.config import PROJECTIONS as METHODS
from livr_viz.core.config import check_one_of
from livr_viz.core.errors import LIVRError
from livr_viz.core.lru import LRU
from livr_viz.core.segments import Segment

PROJECTION_CACHE_BYTES = 32 * 2**20  # [N, 2] float32 each: a 5,000-point map is 40 kB
_CACHE = LRU(512, max_bytes=PROJECTION_CACHE_BYTES)  # bounded: a served app sees new inputs all day


@dataclass
class TokenPoints:
    """Hidden states of many tokens with labels: ``vectors`` [N, D], ``segment`` [N], free ``labels``."""

    vectors: np.ndarray
    segment: np.ndarray
    labels: dict[str, list] = field(default_factory=dict)  # e.g. {"task": [...], "sample": [...], "position": [...]}

    def subset(self, keep: np.ndarray) -> TokenPoints:
        return TokenPoints(
            self.vectors[keep],
            self.segment[keep],
            {k: [v[i] for i in np.nonzero(keep)[0]] for k, v in self.labels.items()},
        )


def points_from_capture(result, layer: int, index: int | None = None, extra: dict | None = None) -> TokenPoints:
    """Tokens of a :class:`~livr_viz.core.capture.CaptureResult` at ``layer`` (0 = embeddings), PAD dropped."""
    if result.hidden_states is None:
        raise LIVRError("the capture holds no hidden states (run LatentAttention with hidden_states=True)")
    n_layers = result.hidden_states.shape[0]
    if not -n_layers <= layer < n_layers:
        raise LIVRError(f"layer must be in 0..{n_layers - 1}; got {layer}")
    rows = range(result.segments.shape[0]) if index is None else [index]
    vecs, segs = [], []
    labels: dict[str, list] = {"sample": [], "position": []}
    for key in extra or {}:
        labels[key] = []
    for b in rows:
        seg = result.segments[b].numpy()
        keep = seg != int(Segment.PAD)
        vecs.append(result.hidden_states[layer, b].float().numpy()[keep])
        segs.append(seg[keep])
        labels["sample"] += [b] * int(keep.sum())
        labels["position"] += list(np.nonzero(keep)[0])
        for key, values in (extra or {}).items():
            labels[key] += [values[b]] * int(keep.sum())
    return TokenPoints(np.concatenate(vecs), np.concatenate(segs), labels)


def dataset_points(
    lm,
    items,
    layer: int,
    stage: str = "full",
    concept_keys=None,
    batch_size: int = 8,
    progress=None,
    answers: bool = False,
) -> TokenPoints:
    """Tokens of many samples at ``layer``, labelled by sample, position, task and concept keys (``"-"`` if absent).

    ``concept_keys=None`` labels every key any item carries. ``answers``: each item's true answer (``target``) is
    appended, teacher-forced as in training, so its answer tokens are points too (the prompt's hidden states do not
    change: attention is causal).
    """
    keys = sorted({k for it in items for k in getattr(it, "concepts", {})}) if concept_keys is None else concept_keys
    parts = []
    starts = range(0, len(items), batch_size)
    for start in progress(starts) if progress else starts:
        chunk = [items[i] for i in range(start, min(len(items), start + batch_size))]
        batch = lm.build_inputs(
            [it.image for it in chunk],
            [it.prompt for it in chunk],
            [str(it.target) for it in chunk] if answers else None,
        )
        capture = LatentAttention(lm, rows="latent" if lm.config.n_latents else "answer").run(batch, stage)
        extra = {"task": [it.task for it in chunk]}
        extra.update({k: [getattr(it, "concepts", {}).get(k, "-") for it in chunk] for k in keys if k != "task"})
        points = points_from_capture(capture, layer, None, extra)
        points.labels["sample"] = [start + s for s in points.labels["sample"]]
        parts.append(points)
    return TokenPoints(
        np.concatenate([p.vectors for p in parts]),
        np.concatenate([p.segment for p in parts]),
        {k: sum((list(p.labels[k]) for p in parts), []) for k in parts[0].labels},
    )


def _key(x: np.ndarray, method: str, seed: int, perplexity: float, n_neighbors: int) -> str:
    h = hashlib.sha1(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    h.update(f"{x.shape}|{method}|{seed}|{perplexity}|{n_neighbors}".encode())
    return h.hexdigest()


def project(
    vectors: np.ndarray,
    method: str = "tsne",
    seed: int = 0,
    perplexity: float = 30.0,
    n_neighbors: int = 15,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """``[N, 2]`` projection. Deterministic in ``seed``; cached."""
    check_one_of("method", method, METHODS)
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if n < 5:
        raise LIVRError(f"need at least 5 points to project, got {n}")
    key = _key(x, method, seed, perplexity, n_neighbors)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    disk = Path(cache_dir) / f"{key}.npz" if cache_dir else None
    if disk is not None and disk.is_file():
        out = np.load(disk)["xy"]
    else:
        out = _compute(x, method, seed, perplexity, n_neighbors)
        if disk is not None:
            disk.parent.mkdir(parents=True, exist_ok=True)
            np.savez(disk, xy=out)
    return _CACHE.put(key, out)


def _compute(x, method, seed, perplexity, n_neighbors) -> np.ndarray:
    from sklearn.decomposition import PCA

    x = x - x.mean(0)
    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(x).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = min(perplexity, max(2.0, (len(x) - 1) / 3))
        return TSNE(2, perplexity=perp, init="pca", random_state=seed, max_iter=500).fit_transform(x).astype(np.float32)
    import umap

    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(x) - 1), random_state=seed, n_jobs=1)
    return reducer.fit_transform(x).astype(np.float32)


def warm_up_umap() -> None:
    """Compile UMAP's numba kernels once (tens of seconds on a cold process)."""
    rng = np.random.default_rng(0)
    project(rng.normal(size=(60, 8)).astype(np.float32), "umap")

"""Latent geometry: how redundant the K latents' image maps are, and token maps that can be compared honestly.

**Redundancy** (:func:`latent_redundancy`, maps ``[K, rows, cols]``, non-negative): pairwise IoU of each map's
top-``q`` mass region and cosine similarity; average-linkage clustering of the latents on ``1 - cosine``
(scipy); and the *effective number of distinct latents*

    N_eff = exp(H(p)),  p = eigenvalues of the K x K cosine-similarity matrix / K  (negatives clipped to 0),

the exponential of the entropy of the normalised spectrum: K identical maps give one non-zero eigenvalue (K) and
N_eff = 1; K mutually orthogonal (e.g. disjoint) maps give S = I and N_eff = K; anything between lies between.
Cosines of raw non-negative maps: a shared diffuse background counts as similarity.

The top-``q`` mass region of a map is every patch at least as strong as the patch at which the mass, summed from
the strongest patch down, first reaches ``q`` of the total (ties are kept together, so a uniform map's region is
the whole grid). ``q = 0.5`` by default: the patches holding half of the attention.

**Projection hygiene** for token maps of several models or stages (:func:`shared_projection`): either fit one
projection on the union of all points (``mode="joint"``: one frame by construction), or fit each set separately
and rotate / scale / reflect it onto the first (``mode="procrustes"``, matched on shared labels such as
(sample, position)). Each set gets ``sklearn.manifold.trustworthiness`` of its 2-D points against its vectors and
its seed-to-seed stability (a second fit with another seed: Procrustes disparity and k-nearest-neighbour overlap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from livr_viz.core.errors import LIVRError
from livr_viz.methods.tokenmap import TokenPoints, project

DEFAULT_Q = 0.5
CLUSTER_DISTANCE = 0.5  # latents whose average 1 - cosine is below this join one cluster
MAX_QUALITY_POINTS = 2000  # trustworthiness is O(N^2): larger sets are scored on a seeded subsample


# ------------------------------------------------------------------------------------------------ redundancy
@dataclass
class LatentRedundancy:
    """Redundancy of K latent maps. ``regions`` [K, rows, cols] bool top-``q`` mass regions; ``iou`` / ``cosine``
    [K, K]; ``linkage`` [K-1, 4] scipy linkage matrix (average, on 1 - cosine); ``clusters`` [K] labels from 1 at
    ``cluster_distance``; ``effective_number`` in [1, K] (module docstring)."""

    q: float
    regions: np.ndarray
    iou: np.ndarray
    cosine: np.ndarray
    linkage: np.ndarray
    clusters: np.ndarray
    cluster_distance: float
    effective_number: float

    @property
    def n_latents(self) -> int:
        return len(self.iou)

    @property
    def mean_pairwise_iou(self) -> float:
        off = ~np.eye(self.n_latents, dtype=bool)
        return float(self.iou[off].mean()) if off.any() else 1.0


def _check_maps(maps) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or 0 in maps.shape:
        raise LIVRError(f"latent maps must be [K, rows, cols]; got shape {maps.shape}")
    if not np.isfinite(maps).all() or (maps < 0).any():
        raise LIVRError("latent maps must be finite and non-negative (attention, not signed scores)")
    if (maps.reshape(len(maps), -1).sum(1) <= 0).any():
        raise LIVRError("a latent map is all zeros; it has no mass to compare")
    return maps


def top_mass_regions(maps, q: float = DEFAULT_Q) -> np.ndarray:
    """``[K, rows, cols]`` bool: each map's top-``q`` mass region (module docstring)."""
    if not 0 < q < 1:
        raise LIVRError(f"q (the share of attention mass a region holds) must be in (0, 1); got {q}")
    maps = _check_maps(maps)
    flat = maps.reshape(len(maps), -1)
    ranked = -np.sort(-flat, axis=1)  # [K, N], strongest first
    reach = (np.cumsum(ranked, 1) >= q * flat.sum(1, keepdims=True)).argmax(1)  # first index reaching q
    threshold = ranked[np.arange(len(flat)), reach]
    return (flat >= threshold[:, None]).reshape(maps.shape)


def pairwise_iou(regions: np.ndarray) -> np.ndarray:
    """``[K, K]`` intersection over union of bool regions ``[K, ...]``."""
    flat = np.asarray(regions, bool).reshape(len(regions), -1).astype(np.float64)
    inter = flat @ flat.T
    union = flat.sum(1)[:, None] + flat.sum(1)[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)


def cosine_similarity(maps) -> np.ndarray:
    """``[K, K]`` cosine similarity of the flattened maps."""
    flat = _check_maps(maps).reshape(len(maps), -1)
    unit = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    return np.clip(unit @ unit.T, -1.0, 1.0)


def effective_number(similarity: np.ndarray) -> float:
    """``exp`` of the entropy of the eigenvalues of a K x K similarity matrix (unit diagonal) divided by K."""
    eig = np.clip(np.linalg.eigvalsh(np.asarray(similarity, dtype=np.float64)), 0, None)
    p = eig / eig.sum()
    p = p[p > 1e-12]
    return float(np.exp(-(p * np.log(p)).sum()))


def latent_redundancy(maps, q: float = DEFAULT_Q, cluster_distance: float = CLUSTER_DISTANCE) -> LatentRedundancy:
    """Redundancy / specialisation of latent image maps ``[K, rows, cols]`` (e.g. ``Analysis.latent_maps()``)."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    regions = top_mass_regions(maps, q)
    cosine = cosine_similarity(maps)
    k = len(cosine)
    if k > 1:
        tree = linkage(squareform(1 - cosine, checks=False), method="average")
        clusters = fcluster(tree, cluster_distance, criterion="distance")
    else:
        tree, clusters = np.zeros((0, 4)), np.ones(1, int)
    return LatentRedundancy(
        q, regions, pairwise_iou(regions), cosine, tree, clusters, cluster_distance, effective_number(cosine)
    )


def latent_maps_by_layer(analysis, normalisation: str = "per_latent") -> np.ndarray:
    """``[L, K, rows, cols]``: each latent's map at every captured layer of an :class:`Analysis` (the filmstrip)."""
    n_layers = analysis.capture.attention.shape[0]
    return np.stack([analysis.latent_maps(layers=[layer], normalisation=normalisation) for layer in range(n_layers)])


# ------------------------------------------------------------------------------------------ projection hygiene
@dataclass
class ProcrustesFit:
    """``apply(x)`` maps points of the moving frame onto the reference: translation, uniform scale and an orthogonal
    map (rotations and reflections). ``disparity``: scipy's definition, the residual sum of squares after both
    matched sets are centred and scaled to unit norm (0 = same shape, 1 = unrelated)."""

    rotation: np.ndarray  # [d, d]
    scale: float
    moving_mean: np.ndarray
    reference_mean: np.ndarray
    disparity: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.moving_mean) @ self.rotation * self.scale + self.reference_mean


def fit_procrustes(reference: np.ndarray, moving: np.ndarray) -> ProcrustesFit:
    """Align ``moving`` [N, d] onto ``reference`` [N, d] (row i matches row i)."""
    from scipy.linalg import orthogonal_procrustes

    a, b = np.asarray(reference, np.float64), np.asarray(moving, np.float64)
    if a.shape != b.shape or a.ndim != 2 or len(a) < 3:
        raise LIVRError(f"Procrustes needs two matched point sets [N, d] with N >= 3; got {a.shape} and {b.shape}")
    a_mean, b_mean = a.mean(0), b.mean(0)
    a0, b0 = a - a_mean, b - b_mean
    a_norm, b_norm = np.linalg.norm(a0), np.linalg.norm(b0)
    if a_norm == 0 or b_norm == 0:
        raise LIVRError("Procrustes needs point sets that are not all one point")
    rotation, s = orthogonal_procrustes(b0 / b_norm, a0 / a_norm)  # s: the optimal scale of the unit-norm sets
    return ProcrustesFit(rotation, float(s * a_norm / b_norm), b_mean, a_mean, float(max(0.0, 1 - s**2)))


def knn_overlap(a: np.ndarray, b: np.ndarray, n_neighbors: int = 10) -> float:
    """Mean share of each point's ``n_neighbors`` nearest neighbours in ``a`` that are also its nearest in ``b``."""
    from sklearn.neighbors import NearestNeighbors

    k = min(n_neighbors, len(a) - 1)
    if k < 1:
        raise LIVRError("k-nearest-neighbour overlap needs at least 2 points")
    na = NearestNeighbors(n_neighbors=k + 1).fit(a).kneighbors(a, return_distance=False)[:, 1:]
    nb = NearestNeighbors(n_neighbors=k + 1).fit(b).kneighbors(b, return_distance=False)[:, 1:]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(na, nb)]))


def trustworthiness(vectors: np.ndarray, xy: np.ndarray, n_neighbors: int = 10) -> float:
    """``sklearn.manifold.trustworthiness`` with ``n_neighbors`` capped below N / 2 (what sklearn accepts)."""
    from sklearn.manifold import trustworthiness as sk_trustworthiness

    k = min(n_neighbors, (len(vectors) - 1) // 2)
    if k < 1:
        raise LIVRError(f"trustworthiness needs at least 4 points; got {len(vectors)}")
    return float(sk_trustworthiness(vectors, xy, n_neighbors=k))


@dataclass
class ProjectionQuality:
    """How far to trust one set's 2-D points: ``trustworthiness`` (1 = no false neighbours), and, between two seeds,
    ``seed_disparity`` (Procrustes, 0 = same layout) and ``seed_knn_overlap`` (1 = same neighbours)."""

    trustworthiness: float
    seed_disparity: float
    seed_knn_overlap: float
    n_neighbors: int
    n_points: int  # points scored (a seeded subsample of at most MAX_QUALITY_POINTS)


@dataclass
class SharedProjection:
    """Several point sets in one 2-D frame. ``xy[name]`` [N_name, 2]; ``alignment_disparity[name]``: Procrustes
    disparity of each separate fit against the reference set (``procrustes`` mode; 0 for the reference)."""

    mode: str
    method: str
    seeds: tuple[int, int]
    points: dict[str, TokenPoints]
    xy: dict[str, np.ndarray]
    quality: dict[str, ProjectionQuality]
    alignment_disparity: dict[str, float]


def _quality(vectors, xy, xy_other, n_neighbors, seed) -> ProjectionQuality:
    keep = np.arange(len(vectors))
    if len(keep) > MAX_QUALITY_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(keep, MAX_QUALITY_POINTS, replace=False))
    v, a, b = vectors[keep], xy[keep], xy_other[keep]
    return ProjectionQuality(
        trustworthiness(v, a, n_neighbors),
        fit_procrustes(a, b).disparity,
        knn_overlap(a, b, n_neighbors),
        n_neighbors,
        len(keep),
    )


def _match(reference: TokenPoints, moving: TokenPoints, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of points present in both sets, matched on the ``keys`` labels."""
    missing = [k for k in keys if k not in reference.labels or k not in moving.labels]
    if missing:
        raise LIVRError(f"cannot match points on {missing}: label(s) missing; available: {sorted(moving.labels)}")
    label = lambda p, i: tuple(str(p.labels[k][i]) for k in keys)
    where = {label(reference, i): i for i in range(len(reference.vectors))}
    pairs = [(where[label(moving, j)], j) for j in range(len(moving.vectors)) if label(moving, j) in where]
    if len(pairs) < 3:
        raise LIVRError(f"only {len(pairs)} points match on {list(keys)}; Procrustes alignment needs at least 3")
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def shared_projection(
    point_sets: dict[str, TokenPoints],
    method: str = "tsne",
    mode: str = "joint",
    seed: int = 0,
    seed_b: int | None = None,
    match_on: Sequence[str] = ("sample", "position"),
    n_neighbors: int = 10,
    **project_kwargs,
) -> SharedProjection:
    """Put several token sets (models, stages) in ONE 2-D frame and say how far the picture can be trusted.

    ``mode="joint"``: one :func:`~livr_viz.methods.tokenmap.project` of the union (vectors must share a width).
    ``mode="procrustes"``: one projection per set, each aligned onto the first set on points matching in
    ``match_on`` (e.g. the same sample and position in LIVR and SFT). Quality is computed per set against a second
    projection with ``seed_b`` (default ``seed + 1``), compared in the same way (union or per set)."""
    if mode not in ("joint", "procrustes"):
        raise LIVRError(f"mode must be 'joint' or 'procrustes'; got {mode!r}")
    if not point_sets:
        raise LIVRError("no point sets to project")
    seed_b = seed + 1 if seed_b is None else seed_b
    names = list(point_sets)
    vectors = {n: np.asarray(point_sets[n].vectors, np.float32) for n in names}
    xy: dict[str, np.ndarray] = {}
    xy_b: dict[str, np.ndarray] = {}
    disparity: dict[str, float] = {}
    if mode == "joint":
        widths = {v.shape[1] for v in vectors.values()}
        if len(widths) != 1:
            raise LIVRError(f"a joint projection needs vectors of one width; got {sorted(widths)} (use procrustes)")
        union = np.concatenate([vectors[n] for n in names])
        bounds = np.cumsum([0] + [len(vectors[n]) for n in names])
        for out, s in ((xy, seed), (xy_b, seed_b)):
            both = project(union, method, s, **project_kwargs)
            out.update({n: both[bounds[i] : bounds[i + 1]] for i, n in enumerate(names)})
    else:
        reference = names[0]
        for out, s in ((xy, seed), (xy_b, seed_b)):
            out.update({n: project(vectors[n], method, s, **project_kwargs) for n in names})
        for n in names:
            if n == reference:
                disparity[n] = 0.0
                continue
            ref_rows, rows = _match(point_sets[reference], point_sets[n], match_on)
            fit = fit_procrustes(xy[reference][ref_rows], xy[n][rows])
            xy[n], disparity[n] = fit.apply(xy[n]).astype(np.float32), fit.disparity
    quality = {n: _quality(vectors[n], xy[n], xy_b[n], n_neighbors, seed) for n in names}
    return SharedProjection(mode, method, (seed, seed_b), dict(point_sets), xy, quality, disparity)

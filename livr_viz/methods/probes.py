"""Linear concept probes on latent hidden states, with control tasks and baselines.

A concept spec (JSON under ``probes/``)::

    {"name": "count", "source": "concept:count", "kind": "ordinal", "tasks": ["counting"],
     "description": "number of target objects"}

``source`` is ``concept:KEY`` (a key of the synthetic samples' concept dict) or ``csv:COLUMN`` (a column of a
user CSV with an ``id`` column matching the data's ids).  Probes follow scikit-learn: :class:`LinearProbe`
has ``fit / predict / score`` and learned state ending in ``_``.  Weights are saved as ``.npz`` + JSON, never
pickle.

Selectivity follows Hewitt & Liang (2019): accuracy on the real labels minus accuracy on a *control task*.
Images have no word types, so the control assigns every sample a random label drawn with the real labels'
class frequencies (fixed by a seed); a probe that reaches high control accuracy is memorising, not reading.
Baselines: the same probe on mean-pooled image tokens, on mean-pooled text tokens, and on the latents of a
randomly initialised copy of the model.
"""

from __future__ import annotations

import copy
import csv
import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from livr_viz.core.capture import LatentAttention
from livr_viz.core.errors import LIVRError
from livr_viz.core.segments import Segment
from livr_viz.core.shipped import shipped_dir

PROBES_DIR = shipped_dir("livr_viz._probes")  # the repository's probes/, carried by the wheel as livr_viz._probes


@dataclass
class ConceptSpec:
    name: str
    source: str  # concept:KEY | csv:COLUMN
    kind: str = "categorical"  # categorical | ordinal
    tasks: list[str] = field(default_factory=list)  # synthetic tasks that carry the concept
    description: str = ""

    def __post_init__(self):
        if not (self.source.startswith("concept:") or self.source.startswith("csv:")):
            raise LIVRError(f"concept {self.name!r}: source must be 'concept:KEY' or 'csv:COLUMN'; got {self.source!r}")
        if self.kind not in ("categorical", "ordinal"):
            raise LIVRError(f"concept {self.name!r}: kind must be categorical or ordinal; got {self.kind!r}")

    @classmethod
    def load(cls, path: str | Path) -> ConceptSpec:
        path = Path(path)
        if not path.is_file():
            builtin = PROBES_DIR / "specs" / f"{path.stem}.json"
            if builtin.is_file():
                path = builtin
            else:
                raise LIVRError(f"concept spec not found: {path} (built-in: {', '.join(builtin_specs())})")
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (json.JSONDecodeError, TypeError) as exc:
            raise LIVRError(f"{path}: invalid concept spec ({exc})") from None


def builtin_specs() -> list[str]:
    return sorted(p.stem for p in (PROBES_DIR / "specs").glob("*.json"))


def labels_for(spec: ConceptSpec, items: Sequence, csv_path: str | Path | None = None) -> tuple[list, list[int]]:
    """Labels of ``items`` for ``spec`` and the indices of items that have one."""
    if spec.source.startswith("concept:"):
        key = spec.source.split(":", 1)[1]
        pairs = [(i, it.concepts.get(key)) for i, it in enumerate(items)]
    else:
        column = spec.source.split(":", 1)[1]
        if csv_path is None:
            raise LIVRError(f"concept {spec.name!r} reads column {column!r} of a CSV: pass --csv")
        table = read_concept_csv(csv_path, column)
        known = {it.id for it in items}
        unknown = sorted(set(table) - known)
        if unknown:
            raise LIVRError(f"{csv_path}: {len(unknown)} ids are not in the data (e.g. {unknown[0]!r})")
        pairs = [(i, table.get(it.id)) for i, it in enumerate(items)]
    keep = [i for i, v in pairs if v is not None and v != ""]
    if not keep:
        raise LIVRError(f"no item carries concept {spec.name!r}")
    return [pairs[i][1] for i in keep], keep


def read_concept_csv(path: str | Path, column: str) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise LIVRError(f"concept CSV not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise LIVRError(f"{path}: needs an 'id' column")
        if column not in reader.fieldnames:
            raise LIVRError(f"{path}: no column {column!r} (columns: {', '.join(reader.fieldnames)})")
        out = {}
        for line, row in enumerate(reader, start=2):
            if not row.get("id"):
                raise LIVRError(f"{path} line {line}: missing id")
            out[row["id"]] = row[column]
    return out


# ------------------------------------------------------------------------------------------- features
@dataclass
class Features:
    """Per layer (0 = embeddings … L): ``latent`` [N, K, D], ``image`` / ``text`` pooled [N, D]."""

    latent: np.ndarray  # [L+1, N, K, D]
    image: np.ndarray  # [L+1, N, D]
    text: np.ndarray  # [L+1, N, D]


@torch.no_grad()
def collect_features(lm, items: Sequence, stage: str = "full", batch_size: int = 32, progress=None) -> Features:
    if not lm.config.n_latents:
        raise LIVRError("probes read latent hidden states: this model has no latents (variant sft)")
    latent, image, text = [], [], []
    for start in range(0, len(items), batch_size):
        chunk = [items[i] for i in range(start, min(len(items), start + batch_size))]
        batch = lm.build_inputs([it.image for it in chunk], [it.prompt for it in chunk])
        result = LatentAttention(lm, hidden_states=True).run(batch, stage)
        assert result.hidden_states is not None  # requested above
        hs = result.hidden_states.float()  # [L+1, B, T, D]
        seg = result.segments
        for b in range(hs.shape[1]):
            latent.append(hs[:, b, seg[b] == int(Segment.LATENT)].numpy())
            image.append(hs[:, b, seg[b] == int(Segment.IMAGE)].mean(1).numpy())
            text.append(hs[:, b, seg[b] == int(Segment.TEXT)].mean(1).numpy())
        if progress is not None:
            progress(min(len(items), start + batch_size) / len(items))
    return Features(np.stack(latent, 1), np.stack(image, 1), np.stack(text, 1))


_GLOBAL_RNG = threading.Lock()  # one re-initialisation at a time: two would interleave their draws (and forks)


def randomized_copy(lm, seed: int = 0):
    """A copy of ``lm`` whose every weight is re-initialised (the 'random model' baseline and sanity check)."""
    clone = copy.copy(lm)
    clone.model = copy.deepcopy(lm.model)
    with _GLOBAL_RNG, torch.random.fork_rng():  # reset_parameters draws from torch's one global RNG
        torch.manual_seed(seed)
        base = clone.model.get_base_model() if hasattr(clone.model, "get_base_model") else clone.model
        for module in base.modules():
            if hasattr(module, "reset_parameters") and not any(True for _ in module.children()):
                module.reset_parameters()
            elif isinstance(module, torch.nn.Module):
                for param in module.parameters(recurse=False):
                    if param.dim() >= 2:
                        torch.nn.init.normal_(param, std=0.02)
    return clone


# ------------------------------------------------------------------------------------------- probe
class LinearProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression on standardised features, as a scikit-learn classifier.

    ``fit`` standardises ``X`` (zero mean, unit variance per feature) and fits an L2-regularised
    ``LogisticRegression(C, max_iter)`` (lbfgs); the learned weights are folded back into the raw feature space,
    so ``coef_`` [n_classes or 1, n_features] and ``intercept_`` apply to unscaled ``X`` and a saved probe needs no
    scaler.  ``n_splits`` and ``seed`` only drive :meth:`cross_validate`.  Works with ``clone``, pipelines and
    ``cross_val_score``; :meth:`save` / :meth:`load` write ``.npz`` + ``.json`` (never pickle).
    """

    def __init__(self, C: float = 1.0, max_iter: int = 500, n_splits: int = 5, seed: int = 0):
        self.C = C
        self.max_iter = max_iter
        self.n_splits = n_splits
        self.seed = seed

    def _estimator(self):
        return make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter))

    def fit(self, X, y) -> LinearProbe:
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        pipeline = self._estimator().fit(X, y)
        scaler, clf = pipeline[0], pipeline[1]
        self.pipeline_ = pipeline
        self.classes_ = clf.classes_
        self.coef_ = clf.coef_ / scaler.scale_  # in the raw feature space
        self.intercept_ = clf.intercept_ - (clf.coef_ * scaler.mean_ / scaler.scale_).sum(1)
        self.n_iter_ = clf.n_iter_
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits in the raw feature space: [n_samples] for two classes (positive = ``classes_[1]``), else
        [n_samples, n_classes]."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        logits = X @ self.coef_.T + self.intercept_
        return logits.ravel() if logits.shape[1] == 1 else logits

    def predict_proba(self, X) -> np.ndarray:
        check_is_fitted(self)
        logits = self.decision_function(X)
        if logits.ndim == 1:  # binary: sklearn stores one row
            logits = np.stack([-logits, logits], 1) / 2
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(1)]

    # ``score`` is ClassifierMixin's (mean accuracy)

    def cross_validate(self, X, y) -> dict:
        """Stratified k-fold accuracy: mean, 95 % interval over folds (t), per-fold scores."""
        from scipy import stats
        from sklearn.model_selection import StratifiedKFold, cross_val_score

        X, y = np.asarray(X), np.asarray(y)
        values, counts = np.unique(y, return_counts=True)
        keep = np.isin(y, values[counts >= 2])  # a class seen once cannot be both trained on and tested
        X, y = X[keep], y[keep]
        counts = counts[counts >= 2]
        splits = int(min(self.n_splits, counts.min())) if len(counts) > 1 else 0
        if splits < 2:
            return {"accuracy": float("nan"), "ci95": [float("nan")] * 2, "folds": [], "note": "too few per class"}
        cv = StratifiedKFold(splits, shuffle=True, random_state=self.seed)
        scores = cross_val_score(self._estimator(), X, y, cv=cv)
        half = stats.t.ppf(0.975, len(scores) - 1) * scores.std(ddof=1) / np.sqrt(len(scores))
        return {
            "accuracy": float(scores.mean()),
            "ci95": [float(scores.mean() - half), float(scores.mean() + half)],
            "folds": [float(s) for s in scores],
        }

    def save(self, path: str | Path, meta: dict | None = None) -> Path:
        """``path.npz`` (coef, intercept and, unless they are Python objects, the classes with their dtype) and
        ``path.json`` (classes as strings, the hyperparameters, feature names if fitted on a frame, ``meta``)."""
        check_is_fitted(self)
        path = Path(path)
        arrays = {"coef": self.coef_, "intercept": self.intercept_}
        classes = np.asarray(self.classes_)
        if classes.dtype.kind in "biufU":  # loadable without pickle
            arrays["classes"] = classes
        np.savez(path.with_suffix(".npz"), **arrays)
        params = {k: v.item() if isinstance(v, np.generic) else v for k, v in self.get_params().items()}
        info = {"classes": [str(c) for c in self.classes_], **params}
        if hasattr(self, "feature_names_in_"):
            info["feature_names"] = [str(f) for f in self.feature_names_in_]
        path.with_suffix(".json").write_text(json.dumps({**info, **(meta or {})}, indent=2))
        return path.with_suffix(".npz")

    @classmethod
    def load(cls, path: str | Path) -> LinearProbe:
        """A probe saved by :meth:`save` (also files of older versions: only ``coef``/``intercept`` in the
        ``.npz``, classes as strings and ``C`` in the ``.json``); the ``.json`` is kept as ``meta_``."""
        path = Path(path)
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as arrays:
            coef, intercept = arrays["coef"], arrays["intercept"]
            classes = arrays["classes"] if "classes" in arrays.files else None
        meta = json.loads(path.with_suffix(".json").read_text())
        defaults = cls().get_params()
        probe = cls(**{k: meta.get(k, v) for k, v in defaults.items()})
        probe.coef_, probe.intercept_ = coef, intercept
        probe.classes_ = classes if classes is not None else np.array(meta["classes"])
        probe.n_features_in_ = coef.shape[1]
        if "feature_names" in meta:
            probe.feature_names_in_ = np.array(meta["feature_names"], dtype=object)
        probe.meta_ = meta
        return probe


def control_labels(y: Sequence | np.ndarray, seed: int = 0) -> np.ndarray:
    """Random labels with the real labels' class frequencies (the control task)."""
    labels = np.asarray([str(v) for v in y])
    return np.random.default_rng(seed).permutation(labels)


@dataclass
class ProbeReport:
    concept: str
    n: int
    classes: list[str]
    majority: float
    layers: list[dict]  # per layer: latent_pooled, latent_best_index, control, selectivity, image, text, random
    best_layer: int

    def to_dict(self) -> dict:
        return asdict(self)


# A probe's reading means something only when the latents beat EVERY baseline by more than this margin: two accuracy
# points or one standard error of the latents' cross-validated accuracy (over its folds), whichever is larger.
PROBE_MARGIN = 0.02


def probe_baselines(report: ProbeReport) -> dict[str, float]:
    """Accuracy of every baseline the latents' best probe is held against: the majority class, the control task (at
    the latents' best layer: that difference is the selectivity), and the same probe on mean-pooled image tokens, on
    mean-pooled text tokens and on a random-weight model's latents (each at its own best layer, so a baseline is not
    beaten by picking a layer where it happens to be weak). Missing baselines (no random model) are left out."""
    best = report.layers[report.best_layer]
    found = {"majority class": float(report.majority), "control task": best["control"]["accuracy"]}
    for key, name in (
        ("image_pooled", "image tokens"),
        ("text_pooled", "text tokens"),
        ("random_model", "random-weight model"),
    ):
        values = [row[key]["accuracy"] for row in report.layers if key in row]
        values = [v for v in values if not np.isnan(v)]
        if values:
            found[name] = float(max(values))
    return {name: value for name, value in found.items() if not np.isnan(value)}


def probe_margin(layer_row: dict) -> float:
    """:data:`PROBE_MARGIN` or one standard error of this layer's latent accuracy over its folds, if larger."""
    folds = layer_row["latent_pooled"].get("folds") or []
    se = float(np.std(folds, ddof=1) / np.sqrt(len(folds))) if len(folds) > 1 else 0.0
    return max(PROBE_MARGIN, se)


def weak_baselines(report: ProbeReport) -> dict[str, float]:
    """The baselines (:func:`probe_baselines`) the latents' best probe does not beat by :func:`probe_margin`."""
    best = report.layers[report.best_layer]
    accuracy, margin = best["latent_pooled"]["accuracy"], probe_margin(best)
    return {name: value for name, value in probe_baselines(report).items() if accuracy <= value + margin}


def run_probes(
    lm,
    spec: ConceptSpec,
    items: Sequence,
    out_dir: str | Path | None = None,
    csv_path: str | Path | None = None,
    stage: str = "full",
    seed: int = 0,
    random_baseline: bool = True,
    per_latent: bool = True,
    progress=None,
) -> ProbeReport:
    """Fit and cross-validate probes for one concept at every layer; optionally save weights and curves."""
    labels, keep = labels_for(spec, items, csv_path)
    items = [items[i] for i in keep]
    y = np.array([str(v) for v in labels])
    if len(set(y)) < 2:
        raise LIVRError(f"concept {spec.name!r} has a single value in this data; nothing to probe")
    feats = collect_features(lm, items, stage, progress=progress)
    rand = collect_features(randomized_copy(lm, seed), items, stage) if random_baseline else None
    probe = LinearProbe(seed=seed)
    ctrl = control_labels(y, seed)
    layers = []
    for layer in range(feats.latent.shape[0]):
        pooled = feats.latent[layer].mean(1)  # [N, D]
        row: dict[str, Any] = {"layer": layer, "latent_pooled": probe.cross_validate(pooled, y)}
        row["control"] = probe.cross_validate(pooled, ctrl)
        row["selectivity"] = row["latent_pooled"]["accuracy"] - row["control"]["accuracy"]
        if per_latent:
            per = [probe.cross_validate(feats.latent[layer][:, k], y)["accuracy"] for k in range(feats.latent.shape[2])]
            row["latent_per_index"] = per
            row["latent_best_index"] = None if np.all(np.isnan(per)) else int(np.nanargmax(per))
        row["image_pooled"] = probe.cross_validate(feats.image[layer], y)
        row["text_pooled"] = probe.cross_validate(feats.text[layer], y)
        if rand is not None:
            row["random_model"] = probe.cross_validate(rand.latent[layer].mean(1), y)
        layers.append(row)
    pooled = [r["latent_pooled"]["accuracy"] for r in layers]
    if np.all(np.isnan(pooled)):
        raise LIVRError(f"concept {spec.name!r}: too few samples per class to cross-validate; use more samples")
    best = int(np.nanargmax(pooled))
    values, counts = np.unique(y, return_counts=True)
    report = ProbeReport(spec.name, len(y), [str(v) for v in values], float(counts.max() / len(y)), layers, best)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for layer in range(feats.latent.shape[0]):
            LinearProbe(seed=seed).fit(feats.latent[layer].mean(1), y).save(
                out / f"{spec.name}_layer{layer}",
                {
                    "concept": spec.name,
                    "layer": layer,
                    "features": "latent_pooled",
                    "stage": stage,
                    "model_variant": lm.config.variant,
                },
            )
        (out / f"{spec.name}_report.json").write_text(json.dumps(report.to_dict(), indent=2))
    return report


def read_with_probe(lm, probe_path: str | Path, image, prompt: str, stage: str = "full") -> dict[str, float]:
    """A saved probe's class probabilities for one input (pooled latents at the probe's layer)."""
    probe = LinearProbe.load(probe_path)
    layer = int(probe.meta_["layer"])
    batch = lm.build_inputs([image], [prompt])
    feats = LatentAttention(lm, hidden_states=True).run(batch, stage)
    assert feats.hidden_states is not None  # requested above
    seg = feats.segments[0]
    x = feats.hidden_states[layer, 0, seg == int(Segment.LATENT)].float().mean(0, keepdim=True).numpy()
    return {str(c): float(p) for c, p in zip(probe.classes_, probe.predict_proba(x)[0])}

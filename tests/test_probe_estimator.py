"""LinearProbe is a scikit-learn classifier: estimator checks, clone / params, pipelines, save / load."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from livr_viz.methods.probes import PROBES_DIR, LinearProbe


def planted(n_classes=3, n=240, d=12, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 20, d) + rng.normal(0, 5, d)  # unscaled, off-centre features
    X[:, 0] = rng.normal(size=n) + 3 * y + 10  # the planted, readable direction
    return X.astype(dtype), y


# Every check applies: no expected failures.  (check_array_api_input skips itself unless SCIPY_ARRAY_API=1.)
@parametrize_with_checks([LinearProbe()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_params_clone_and_set_params():
    params = {"C": 0.5, "max_iter": 50, "n_splits": 3, "seed": 7}
    probe = LinearProbe(**params)
    assert probe.get_params() == params
    assert vars(probe) == params  # __init__ stores the hyperparameters and nothing else
    X, y = planted()
    probe.fit(X, y)
    twin = clone(probe)
    assert twin.get_params() == params and not hasattr(twin, "coef_")
    assert twin.set_params(C=2.0) is twin and twin.C == 2.0 and probe.C == 0.5
    assert LinearProbe(**LinearProbe(**params).get_params()).get_params() == params
    LinearProbe(C="nonsense")  # no validation in __init__ ...
    with pytest.raises(ValueError):  # ... fit validates
        LinearProbe(C="nonsense").fit(X, y)


def test_fit_returns_self_and_fitted_attributes():
    X, y = planted()
    probe = LinearProbe()
    with pytest.raises(NotFittedError):
        probe.predict(X)
    assert probe.fit(X, y) is probe
    assert list(probe.classes_) == [0, 1, 2] and probe.n_features_in_ == X.shape[1]
    assert probe.coef_.shape == (3, X.shape[1]) and probe.intercept_.shape == (3,)
    assert probe.decision_function(X).shape == (len(X), 3)
    with pytest.raises(ValueError, match="features"):
        probe.predict(X[:, :5])
    binary = LinearProbe().fit(X, y % 2)
    assert binary.decision_function(X).shape == (len(X),)
    assert np.array_equal(binary.predict(X), binary.classes_[(binary.decision_function(X) > 0).astype(int)])


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_numbers_as_standardised_logistic_regression(n_classes, dtype):
    """The probe is StandardScaler + LogisticRegression(C, max_iter), folded into the raw feature space."""
    X, y = planted(n_classes, dtype=dtype)
    probe = LinearProbe(C=0.3, max_iter=300).fit(X, y)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=300)).fit(X, y)
    scaler, clf = ref[0], ref[1]
    assert np.array_equal(probe.coef_, clf.coef_ / scaler.scale_)
    assert np.array_equal(probe.intercept_, clf.intercept_ - (clf.coef_ * scaler.mean_ / scaler.scale_).sum(1))
    tol = 1e-4 if dtype == np.float32 else 1e-9
    assert np.allclose(probe.predict_proba(X), ref.predict_proba(X), atol=tol)
    assert np.allclose(probe.decision_function(X), ref.decision_function(X), atol=tol * 100)
    assert np.array_equal(probe.predict(X), ref.predict(X))
    assert probe.score(X, y) == ref.score(X, y)
    cv = probe.cross_validate(X, y)
    folds = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(C=0.3, max_iter=300)),
        X,
        y,
        cv=StratifiedKFold(5, shuffle=True, random_state=0),
    )
    assert cv["folds"] == [float(s) for s in folds]


def test_in_a_pipeline_and_cross_val_score():
    X, y = planted()
    pipe = make_pipeline(StandardScaler(), LinearProbe())
    scores = cross_val_score(pipe, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0))
    assert len(scores) == 3 and scores.mean() > 0.85
    assert pipe.fit(X, y).score(X, y) > 0.85
    assert cross_val_score(LinearProbe(), X, y, cv=3).mean() > 0.85


@pytest.mark.parametrize("labels", ["int", "str"])
def test_save_load_gives_identical_predictions(tmp_path, labels):
    X, y = planted()
    if labels == "str":
        y = np.array(["low", "mid", "high"])[y]
    probe = LinearProbe(C=np.float64(0.7), seed=np.int64(3)).fit(X, y)
    written = probe.save(tmp_path / "p", {"layer": 2, "concept": "demo"})
    assert written == tmp_path / "p.npz" and not list(tmp_path.glob("*.pkl"))
    again = LinearProbe.load(tmp_path / "p")
    assert again.get_params() == probe.get_params()
    assert again.meta_["layer"] == 2 and again.meta_["classes"] == [str(c) for c in probe.classes_]
    assert np.array_equal(again.classes_, probe.classes_) and again.classes_.dtype == probe.classes_.dtype
    assert np.array_equal(again.predict_proba(X), probe.predict_proba(X))
    assert np.array_equal(again.decision_function(X), probe.decision_function(X))
    assert np.array_equal(again.predict(X), probe.predict(X))
    assert again.score(X, y) == probe.score(X, y) and again.n_features_in_ == X.shape[1]


def test_loads_the_older_file_format(tmp_path):
    """Files written before the estimator rewrite: coef/intercept in the .npz; classes (strings) and C in the .json."""
    X, y = planted()
    probe = LinearProbe().fit(X, y)
    np.savez(tmp_path / "old.npz", coef=probe.coef_, intercept=probe.intercept_)
    (tmp_path / "old.json").write_text(json.dumps({"classes": ["0", "1", "2"], "C": 1.0, "layer": 1}))
    old = LinearProbe.load(tmp_path / "old")
    assert list(old.classes_) == ["0", "1", "2"] and old.C == 1.0 and old.meta_["layer"] == 1
    assert np.array_equal(old.predict_proba(X), probe.predict_proba(X))
    assert np.array_equal(old.predict(X), probe.predict(X).astype(str))


def shipped_probe() -> Path:
    path = PROBES_DIR / "demo-livr" / "count_layer4"
    if not path.with_suffix(".npz").is_file():
        pytest.skip("shipped probes are not in this checkout")
    return path


def test_a_shipped_probe_loads_and_predicts():
    path = shipped_probe()
    meta = json.loads(path.with_suffix(".json").read_text())
    probe = LinearProbe.load(path)
    assert probe.meta_ == meta and probe.meta_["layer"] == 4
    assert list(probe.classes_) == meta["classes"] and probe.n_features_in_ == probe.coef_.shape[1]
    X = np.random.default_rng(0).normal(size=(9, probe.n_features_in_)).astype(np.float32)
    logits = X @ probe.coef_.T + probe.intercept_
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    proba = probe.predict_proba(X)
    assert np.allclose(proba, expected) and np.allclose(proba.sum(1), 1)
    assert np.array_equal(probe.predict(X), probe.classes_[expected.argmax(1)])
    with pytest.raises(ValueError, match="features"):
        probe.predict(X[:, :10])

"""20 concurrent sessions: all succeed, each equals the sequential result (no cross-talk), memory bounded."""

import threading

import psutil
import pytest
from gradio_client import Client, handle_file

from livr_viz.data import make_sample, task_names

pytestmark = pytest.mark.slow
MODELS = ("demo-livr", "demo-latents-only", "demo-sft")  # the app serves the bundled set by name


def _inputs(tmp_path):
    out = []
    for i in range(20):
        s = make_sample(task_names()[i % 9], "test", 4242, i)
        path = tmp_path / f"{s.id}.png"
        s.image.save(path)
        out.append((MODELS[i % 3], str(path), s.prompt))
    return out


def _call(client, model, path, prompt):
    md, label, gallery, bars, _ = client.predict(
        model, handle_file(path), prompt, "full", "all", "mean", "mean", "per_latent", 0.55, api_name="/analyze"
    )
    return md.split("\n")[0], {c["label"]: round(c["confidence"], 5) for c in label["confidences"]}, len(gallery)


def test_twenty_concurrent_sessions_match_sequential(app_url, tmp_path):
    inputs = _inputs(tmp_path)
    sequential = [_call(Client(app_url, verbose=False), *args) for args in inputs]
    app_process = next(
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and "app.py" in " ".join(p.info["cmdline"])
        and str(app_url.rstrip("/").rsplit(":", 1)[1]) in " ".join(p.info["cmdline"])
    )
    rss_before = app_process.memory_info().rss
    results, errors = [None] * 20, []

    def worker(i):
        try:
            results[i] = _call(Client(app_url, verbose=False), *inputs[i])
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors[:3]
    assert results == sequential
    growth = app_process.memory_info().rss - rss_before
    assert growth < 1024**3, f"the app grew by {growth / 2**20:.0f} MiB under load"

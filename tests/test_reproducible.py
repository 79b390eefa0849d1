"""Refactors change no number: the quick preset trains to bit-identical weights, and every task draws the same
questions, as when the digests in tests/data/digests.json were recorded.

Why a digest and not a comparison of two runs: two runs of today's code agree with each other whatever the code does;
only a value recorded before a change shows that the change moved nothing.

Float kernels differ between CPU instruction sets and torch releases, so each digest is stored under the platform it
was measured on (torch version, CPU capability and CPU model, one thread); on a platform with no recorded digest the
weights test is skipped and says so. The CPU model is part of the key because MKL picks its kernels per processor:
two machines that torch both calls AVX512 trained the quick preset to different weights (measured, 2026-12-08).
When a change is MEANT to move numbers (a new default, a new sampler), record the new digests
and say why in the commit:

    LIVR_VIZ_RECORD_DIGESTS=1 OMP_NUM_THREADS=1 python -m pytest -q tests/test_reproducible.py

which rewrites this platform's entries in tests/data/digests.json (the data digest holds on every platform).
"""

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from livr_viz.data import make_sample
from livr_viz.data.tasks import TASKS
from livr_viz.training.trainer import Trainer, build_model_for_training, preset_config

DIGESTS = Path(__file__).parent / "data" / "digests.json"
RECORD = os.environ.get("LIVR_VIZ_RECORD_DIGESTS") == "1"


def _platform() -> str:
    return f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {_cpu_model()}, 1 thread"


def _cpu_model() -> str:
    """``cpu family/model`` of the first processor in /proc/cpuinfo (Linux), else Python's word for the processor."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    if "cpu family" in fields and "model" in fields:
        return f"{fields.get('vendor_id', 'cpu')} {fields['cpu family']}/{fields['model']}"
    return platform.processor() or platform.machine()


def _stored() -> dict:
    return json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}


def _check(key: str, digest: str, platform: str | None = None) -> None:
    """Compare ``digest`` with the stored one (``platform``: the entry is per platform), or store it when recording."""
    stored = _stored()
    table = stored.setdefault("weights", {}).setdefault(key, {}) if platform else stored.setdefault("data", {})
    name = platform or key
    if RECORD:
        table[name] = digest
        DIGESTS.parent.mkdir(parents=True, exist_ok=True)
        DIGESTS.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
        return
    if name not in table:
        pytest.skip(f"no digest of {key!r} recorded for {name}; see this module's docstring to record one")
    assert digest == table[name], f"{key} moved: {digest} != {table[name]} (intended? see this module's docstring)"


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and raw bytes, in name order (a file's own byte order may change)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def test_every_task_draws_the_questions_it_drew_when_recorded():
    """Three questions of each task in both answer formats (image and panel bytes, prompt, options, answer, evidence,
    concepts): the data the trainer sees and the truths the views score against."""
    h = hashlib.sha256()
    for task in TASKS:
        for split, index, fmt in (("train", 0, "letter"), ("train", 5, "word"), ("test", 3, "letter")):
            s = make_sample(task, split, 0, index, answer_format=fmt)
            h.update(f"{task}|{split}|{index}|{s.prompt}|{s.options}|{s.answer}|".encode())
            h.update(json.dumps(s.concepts, sort_keys=True, default=str).encode())
            for image in (s.image, *(s.panels[k] for k in sorted(s.panels))):
                h.update(np.asarray(image).tobytes())
            h.update(np.packbits(s.evidence).tobytes())
    _check("samples of every task", h.hexdigest())


def test_quick_preset_trains_to_the_recorded_weights(tmp_path, tiny_paths):
    """LIVR's two stages with the quick preset on the tiny backbone over all nine tasks (about 5 s), at one thread so
    that the float reductions run in a fixed order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = preset_config("quick", variant="livr", tasks="all")
        Trainer(build_model_for_training(tiny_paths["base"], cfg), cfg, tmp_path, progress=False).run()
    finally:
        torch.set_num_threads(threads)
    weights = load_file(str(tmp_path / "checkpoint" / "trainable.safetensors"))
    _check("quick preset, livr, all tasks", tensors_digest(weights), platform=_platform())

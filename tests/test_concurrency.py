"""A model shared by concurrent requests: hooks, captures and kernel switches of one request never reach another's
forward, by construction (context-local hooks and kernels), not by a single queue; bounded result caches.

Each crossing test holds request A *inside* its forward (a hook of A's own waits there) while request B runs a whole
forward on the same model, so B's forward certainly passes A's hooks / kernel; both must equal their serial runs."""

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import AttentionInterface

from livr_viz.core.capture import LatentAttention, attention_kernel, base_attn_implementation
from livr_viz.core.errors import LIVRError
from livr_viz.core.hooks import local_hook
from livr_viz.core.lru import LRU, approx_bytes
from livr_viz.core.model import LIVRModel
from livr_viz.core.segments import Segment
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone
from livr_viz.methods import diagnostics as D
from livr_viz.methods.interventions import LatentAblation, replace_positions

SMALL = dict(image_size=48, patch_size=12, vision_hidden=32, vision_layers=1, vision_heads=2, text_hidden=48)
SMALL |= dict(text_layers=2, text_heads=2, text_intermediate=96)
WAIT_S = 60.0


def run_threads(workers) -> None:
    """Each of ``workers`` (callables) in its own thread, all at once; the first error any raised is raised here."""
    errors: list[BaseException] = []

    def guarded(work):
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(work,)) for work in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 2)
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def lm():
    model, processor = build_demo_backbone(DemoBackboneConfig(seed=5, **SMALL))
    return LIVRModel.from_backbone("test", model=model, processor=processor, variant="livr", n_latents=3)


@pytest.fixture(scope="module")
def batch(lm):
    items = list(SyntheticTaskDataset(["counting", "object_localization"], "test", 1, 11, answer_format="word"))
    return lm.build_inputs([it.image for it in items], [it.prompt for it in items])


def _capture(lm, batch, rows="latent"):
    out = LatentAttention(lm, rows=rows, hidden_states=True).run(batch)
    return out.attention, out.answer_logits, out.hidden_states


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def _held_inside(lm, work_a, work_b):
    """Run ``work_a`` in thread A, held inside its first decoder layer until ``work_b`` (thread B) has run a whole
    forward on the same model; returns (A's result, B's result)."""
    inside, b_done, out = threading.Event(), threading.Event(), {}
    layer0 = lm.family.language_model(lm.base_model).layers[0]

    def hold(*_):
        if not inside.is_set():
            inside.set()
            assert b_done.wait(WAIT_S), "thread B never finished"

    def a():
        try:
            with local_hook(layer0, hold):
                out["a"] = work_a()
        finally:
            inside.set()  # B must not wait for a forward that failed

    def b():
        try:
            assert inside.wait(WAIT_S), "thread A never entered its forward"
            out["b"] = work_b()
        finally:
            b_done.set()

    run_threads([a, b])
    return out["a"], out["b"]


def test_a_patch_of_one_request_never_reaches_another_forward(lm, batch):
    positions = torch.stack([(row == int(Segment.LATENT)).nonzero(as_tuple=True)[0] for row in batch.segments])
    zeros = torch.zeros(*positions.shape, lm.base_model.config.get_text_config().hidden_size)

    def patched():
        with replace_positions(lm, 0, positions, zeros):
            return _capture(lm, batch)

    serial_plain, serial_patched = _capture(lm, batch), patched()
    assert not torch.equal(serial_plain[1], serial_patched[1])  # the patch changes the answer: a crossing would show
    got_patched, got_plain = _held_inside(lm, patched, lambda: _capture(lm, batch))
    assert _same(got_plain, serial_plain) and _same(got_patched, serial_patched)
    got_plain, got_patched = _held_inside(lm, lambda: _capture(lm, batch), patched)  # and the other way round
    assert _same(got_plain, serial_plain) and _same(got_patched, serial_patched)


def test_two_captures_at_once_record_only_their_own_rows(lm, batch):
    serial_latent, serial_answer = _capture(lm, batch, "latent"), _capture(lm, batch, "answer")
    latent, answer = _held_inside(lm, lambda: _capture(lm, batch, "latent"), lambda: _capture(lm, batch, "answer"))
    assert latent[0].shape[3] == 3 and answer[0].shape[3] == 1  # [L, B, H, R, T]: K latent rows vs one answer row
    assert _same(latent, serial_latent) and _same(answer, serial_answer)


def test_a_kernel_switch_is_this_requests_only(lm, batch, monkeypatch):
    eager = AttentionInterface._global_mapping["livr_capture_eager"]
    monkeypatch.setitem(  # an "eager" that is far from sdpa, so that a kernel that leaked would show
        AttentionInterface._global_mapping,
        "livr_capture_eager",
        lambda module, query, *args, **kwargs: eager(module, query * 3, *args, **kwargs),
    )

    def on_eager():
        with D.attention_implementation(lm, "eager"):
            return _capture(lm, batch)

    serial_sdpa, serial_eager = _capture(lm, batch), on_eager()
    assert (serial_sdpa[0] - serial_eager[0]).abs().max() > 1e-3
    got_eager, got_sdpa = _held_inside(lm, on_eager, lambda: _capture(lm, batch))
    assert _same(got_sdpa, serial_sdpa) and _same(got_eager, serial_eager)
    assert base_attn_implementation(lm.base_model) == "sdpa"  # the shared model was never switched


def test_the_per_request_kernel_equals_switching_the_model(lm, batch):
    """The context-local kernel gives what ``set_attn_implementation`` gave (bit for bit), on a copy of the model."""
    import copy

    from livr_viz.core.capture import install_capture

    with attention_kernel(lm.base_model, "eager"):
        local = _capture(lm, batch)
    switched = copy.copy(lm)
    switched.model = copy.deepcopy(lm.model)
    install_capture(switched.base_model, "eager")
    assert base_attn_implementation(switched.base_model) == "eager"
    assert _same(local, _capture(switched, batch))
    with pytest.raises(LIVRError, match="attention kernel must be one of"), attention_kernel(lm.base_model, "flash"):
        pass


def test_ablations_from_many_threads_equal_serial(lm, batch):
    """Free-running: 4 threads × 3 ablations of every mode that hooks or masks, against the serial answers."""
    modes = ("zero", "mean", "noise", "remove", "blind")
    serial = {m: LatentAblation(lm, m, 0).run(batch, [0, 2], ["1", "2"]).after for m in modes}
    got = []

    def worker(i):
        for j in range(3):
            mode = modes[(i + j) % len(modes)]
            got.append((mode, LatentAblation(lm, mode, 0).run(batch, [0, 2], ["1", "2"]).after))

    run_threads([lambda i=i: worker(i) for i in range(4)])
    assert len(got) == 12 and all(torch.equal(after, serial[mode]) for mode, after in got)


def test_lru_keeps_both_bounds():
    cache = LRU(size=10, max_bytes=3 * 4000)
    for i in range(5):
        cache.put(i, np.zeros(1000, np.float32))  # 4,000 bytes each
    assert len(cache) == 3 and 0 not in cache and 4 in cache and cache.nbytes == 12000
    cache.get(2)  # used: now the newest
    cache.put(5, np.zeros(1000, np.float32))
    assert 2 in cache and 3 not in cache
    big = np.zeros(10_000, np.float32)
    assert cache.put("big", big) is big and "big" not in cache and len(cache) == 3  # over the budget: served only
    keys = approx_bytes("a") + approx_bytes("m")
    value = {"a": torch.zeros(10), "m": torch.nn.Linear(1000, 1000)}  # a model a result points at is shared
    assert approx_bytes(value) == 40 + keys  # … and not counted


def test_encodes_from_many_threads_keep_their_own_padding(lm):
    """Each fast-tokenizer call sets the tokenizer's padding state: unpadded encodes (option ids) beside padded
    batches (build_inputs) once broke the batches ("Unable to create tensor"); LIVRModel.text_lock serialises them."""
    items = list(SyntheticTaskDataset(["counting", "jigsaw", "art_style"], "test", 1, 5, answer_format="word"))

    def build(n):
        return lm.build_inputs([it.image for it in items[:n]], [it.prompt for it in items[:n]]).input_ids

    serial = {n: build(n) for n in (1, 3)}
    ids = lm.choice_token_ids(["1", "2"])

    def worker(i):
        for j in range(20):
            n = (1, 3)[(i + j) % 2]
            assert lm.choice_token_ids(["1", "2"]) == ids
            assert torch.equal(build(n), serial[n])

    run_threads([lambda i=i: worker(i) for i in range(6)])


def test_a_slow_load_blocks_no_other_model_and_loads_once(monkeypatch):
    from livr_viz.service import models as M

    started, release, calls = threading.Event(), threading.Event(), []

    def load(name):
        calls.append(name)
        if name == "slow":
            started.set()
            assert release.wait(WAIT_S)
        return SimpleNamespace(model=torch.nn.Linear(4, 4), base_model=torch.nn.Linear(4, 4), name=name)

    monkeypatch.setattr(M, "load_model", load)
    pool = M.ModelPool(max_models=2, max_bytes=10**9)
    fast = pool.get("fast")
    slow = [threading.Thread(target=pool.get, args=("slow",)) for _ in range(2)]
    for t in slow:
        t.start()
    assert started.wait(WAIT_S)
    assert pool.get("fast") is fast  # answered while "slow" is still loading
    release.set()
    for t in slow:
        t.join(WAIT_S)
    assert calls.count("slow") == 1 and pool.loaded() == ["fast", "slow"]
    pool.get("fast")  # now the most recently used
    pool.get("third")  # over max_models: the least recently used ("slow") goes
    assert pool.loaded() == ["fast", "third"]
    small = M.ModelPool(max_models=8, max_bytes=M.model_bytes(fast) + 1)
    small.get("a"), small.get("b")  # over the byte budget: only the newest stays
    assert small.loaded() == ["b"] and small.nbytes == M.model_bytes(fast)


def test_the_backend_badge_is_checked_once_per_input(monkeypatch):
    """The four extra captures of the kernel check run once per (model, prompt, image), not on every view change."""
    from livr_viz.methods import diagnostics
    from livr_viz.service import notes

    calls = []
    monkeypatch.setattr(notes, "_BADGES", LRU(8))
    monkeypatch.setattr(diagnostics, "check_backends", lambda lm, items: calls.append(items) or {"status": "n/a"})
    monkeypatch.setattr(notes.POOL, "get", lambda name: SimpleNamespace(base_model=torch.nn.Linear(1, 1)))
    monkeypatch.setattr(notes, "base_attn_implementation", lambda model: "sdpa")
    image = list(SyntheticTaskDataset(["counting"], "test", 1, 3, answer_format="word"))[0].image
    analysis = SimpleNamespace(image=image, prompt="How many?")
    first = notes.backend_badge("m", analysis)
    assert notes.backend_badge("m", analysis) == first and len(calls) == 1
    notes.backend_badge("m", SimpleNamespace(image=image, prompt="Which colour?"))
    assert len(calls) == 2  # another input: checked again

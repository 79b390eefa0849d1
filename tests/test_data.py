"""The synthetic suite: determinism, answers verified from pixels, evidence, splits, balance, loaders."""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from livr_viz.data import LETTERS, TASKS, make_sample
from livr_viz.data import draw as D
from livr_viz.data.io import DataError, export_samples, load_blink, load_jsonl, preview
from livr_viz.data.tasks import CountingKnobs, iou, luminance

from .conftest import run_cli


@pytest.mark.parametrize("task", list(TASKS))
def test_same_key_same_bytes(task):
    a, b = make_sample(task, "val", 7, 11), make_sample(task, "val", 7, 11)
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.evidence, b.evidence) and a.concepts == b.concepts and a.answer == b.answer
    assert a.id == f"{task}-val-7-11-word"  # the demo suite's default format; the letter format keeps the bare key
    assert make_sample(task, "val", 7, 11, answer_format="letter").id == f"{task}-val-7-11"


@pytest.mark.parametrize("fmt", ["word", "letter"])
@pytest.mark.parametrize("task", list(TASKS))
def test_sample_shape_prompt_evidence(task, fmt):
    for i in range(12):
        s = make_sample(task, "train", 0, i, answer_format=fmt)
        assert s.image.mode == "RGB" and s.image.size == (96, 96)
        assert s.evidence.shape == (96, 96) and s.evidence.dtype == bool
        assert 0 < s.evidence.sum() < s.evidence.size
        assert s.answer in LETTERS[: s.n_choices] and s.n_choices == TASKS[task].n_choices
        assert s.prompt.startswith(s.question)
        assert ("Choices: (A) " if fmt == "letter" else f"Options: {', '.join(s.choices)}.") in s.prompt
        json.dumps(s.concepts)  # flat, serialisable


@pytest.mark.parametrize("task", list(TASKS))
def test_splits_are_disjoint_and_answers_balanced(task):
    n_choices = TASKS[task].n_choices
    hashes = {}
    for split in ("train", "val", "test"):
        letters = Counter()
        n = 20 * n_choices
        for i in range(n):
            s = make_sample(task, split, 0, i)
            letters[s.answer] += 1
            hashes.setdefault(hash(s.image.tobytes()), set()).add(split)
        assert set(letters.values()) == {n // n_choices}, letters  # exactly balanced
        assert max(letters.values()) / n <= 1 / n_choices + 0.05
    assert all(len(splits) == 1 for splits in hashes.values())


def _crop(mask):
    ys, xs = np.nonzero(mask)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def test_counting_answer_from_pixels():
    knobs = CountingKnobs()
    for i in range(80):
        s = make_sample("counting", "test", 1, i)
        colour, shape = s.concepts["target_color"], s.concepts["target_shape"]
        pixels = np.asarray(s.image)
        labels, n = ndimage.label(np.all(pixels == D.PALETTE[colour], axis=-1))
        r = knobs.radius * 96
        ref = Image.new("L", (96, 96), 0)
        D.draw_shape(ImageDraw.Draw(ref), shape, 48, 48, r, 255)
        ref = _crop(np.asarray(ref) > 0)
        counted = 0
        for comp in range(1, n + 1):
            mask = _crop(labels == comp)
            h, w = max(mask.shape[0], ref.shape[0]), max(mask.shape[1], ref.shape[1])
            a = np.zeros((h + 2, w + 2), bool)
            a[1 : mask.shape[0] + 1, 1 : mask.shape[1] + 1] = mask
            best = 0.0
            for dy in range(3):  # sub-pixel placement changes the raster: allow a one-pixel shift
                for dx in range(3):
                    b = np.zeros_like(a)
                    b[dy : dy + ref.shape[0], dx : dx + ref.shape[1]] = ref[: h + 2 - dy, : w + 2 - dx]
                    best = max(best, (a & b).sum() / (a | b).sum())
            if best > 0.7:  # same shape and size as the rasterised target
                counted += 1
        assert str(counted) == s.choices[LETTERS.index(s.answer)], (s.id, counted)


def test_counting_questions_use_the_right_plural():
    """A teacher reads these aloud: "How many yellow crosses", never "crosss"."""
    assert [D.plural(s) for s in D.SHAPES] == ["circles", "squares", "triangles", "diamonds", "stars", "crosses"]
    for i in range(60):
        s = make_sample("counting", "train", 3, i)
        shape = s.concepts["target_shape"]
        assert f" {D.plural(shape)} are in the image?" in s.prompt, s.prompt
        assert "crosss" not in s.prompt


def test_reflectance_answer_from_pixels():
    for i in range(60):
        s = make_sample("relative_reflectance", "test", 1, i)
        pixels = np.asarray(s.image)
        (ax, ay), (bx, by) = s.concepts["point_a"], s.concepts["point_b"]
        la = luminance(pixels[int(round(ay)), int(round(ax))])
        lb = luminance(pixels[int(round(by)), int(round(bx))])
        truth = "same" if abs(la - lb) < 1e-3 else ("A" if la < lb else "B")
        assert ["A", "B", "same"][LETTERS.index(s.answer)] == truth, (s.id, la, lb)


def test_localization_answer_from_pixels():
    for i in range(40):
        s = make_sample("object_localization", "test", 1, i)
        ys, xs = np.nonzero(np.all(np.asarray(s.image) == D.PALETTE[s.concepts["object_color"]], axis=-1))
        box = (xs.min(), ys.min(), xs.max(), ys.max())
        best = int(np.argmax([iou(box, b) for b in s.concepts["boxes"]]))
        assert LETTERS[best] == s.answer, s.id


def test_jigsaw_answer_from_seams():
    """The true patch continues the image across the hole's top and left seams."""
    right = 0
    for i in range(40):
        s = make_sample("jigsaw", "test", 1, i)
        holed = np.asarray(s.panels["image"], dtype=float)
        half = holed.shape[0] // 2
        above, left = holed[half - 1, half:], holed[half:, half - 1]
        seams = [
            np.abs(np.asarray(s.panels[f"patch_{c}"], dtype=float)[0] - above).mean()
            + np.abs(np.asarray(s.panels[f"patch_{c}"], dtype=float)[:, 0] - left).mean()
            for c in "AB"
        ]
        right += LETTERS[int(np.argmin(seams))] == s.answer
    assert right >= 36, right


def test_similarity_answer_from_spectra():
    def spectrum(img):
        grey = np.asarray(img.convert("L"), dtype=float)
        power = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean())))
        return power.ravel() / (np.linalg.norm(power) or 1)

    right = 0
    for i in range(40):
        s = make_sample("visual_similarity", "test", 1, i)
        ref = spectrum(s.panels["reference"])
        scores = [ref @ spectrum(s.panels[c]) for c in "AB"]
        right += LETTERS[int(np.argmax(scores))] == s.answer
    assert right >= 34, right


def test_correspondence_concepts_are_consistent():
    for i in range(20):
        s = make_sample("semantic_correspondence", "test", 2, i)
        assert s.concepts["candidate_parts"][LETTERS.index(s.answer)] == s.concepts["part"]
        f = make_sample("functional_correspondence", "test", 2, i)
        assert (
            f.concepts["role"] in ("grip", "working end")
            and f.concepts["tool_reference"] != f.concepts["tool_candidates"]
        )
        v = make_sample("visual_correspondence", "test", 2, i)
        assert v.concepts["transform"] in ("shift", "rotation", "scale")


def test_knobs_are_validated():
    with pytest.raises(ValueError, match="unknown knob"):
        make_sample("counting", knob_that_does_not_exist=1)
    s = make_sample("counting", "train", 0, 3, max_count=2, min_count=2)
    assert s.concepts["count"] == 2


def test_export_and_load_round_trip(tmp_path):
    path = export_samples(["counting", "jigsaw"], "val", 3, 5, tmp_path)
    records, errors = load_jsonl(path)
    assert not errors and len(records) == 6
    s = make_sample("counting", "val", 5, 1)
    rec = next(r for r in records if r.id == s.id)
    assert rec.image.tobytes() == s.image.tobytes()
    assert np.array_equal(rec.evidence, s.evidence) and rec.concepts == s.concepts and rec.prompt == s.prompt


def test_bad_jsonl_lines_are_named_and_skippable(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    good = {"id": "g1", "task": "t", "image": "ok.png", "question": "q?", "choices": ["x", "y"], "answer": "B"}
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "id": "g2", "answer": "C"}),
        json.dumps({k: v for k, v in good.items() if k != "question"} | {"id": "g3"}),
        json.dumps({**good, "id": "g4", "image": "missing.png"}),
        json.dumps({**good, "id": "g5", "choices": "x,y"}),
        json.dumps({**good, "id": "g1"}),
        json.dumps({**good, "id": "g6", "evidence_mask": "nope.png"}),
        json.dumps({**good, "id": "g7", "concepts": {"count": 3}}),
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_jsonl(tmp_path / "data.jsonl")
    records, errors = load_jsonl(tmp_path / "data.jsonl", skip_invalid=True)
    assert [r.id for r in records] == ["g1", "g7"]
    expected = [
        "line 2",
        "line 3: field 'answer'",
        "line 4: missing field 'question'",
        "line 5: field 'image'",
        "line 6: field 'choices'",
        "line 7: field 'id'",
        "line 8: field 'evidence_mask'",
    ]
    assert len(errors) == len(expected)
    for err, want in zip(errors, expected):
        assert want in err, (err, want)


def test_blink_parquet_and_json_layouts(tmp_path):
    import pandas as pd

    from livr_viz.data.io import image_bytes

    imgs = [Image.new("RGB", (30, 20), c) for c in ("red", "green")]
    rows = [
        {
            "idx": "val_Jigsaw_1",
            "sub_task": "Jigsaw",
            "question": "Which image fits?",
            "image_1": {"bytes": image_bytes(imgs[0]), "path": None},
            "image_2": {"bytes": image_bytes(imgs[1]), "path": None},
            "image_3": None,
            "image_4": None,
            "choices": ["(A)", "(B)"],
            "answer": "(B)",
            "prompt": "…",
        }
    ]
    (tmp_path / "Jigsaw").mkdir()
    pd.DataFrame(rows).to_parquet(tmp_path / "Jigsaw" / "val-00000.parquet")
    imgs[0].save(tmp_path / "a.png")
    (tmp_path / "more.json").write_text(
        json.dumps(
            [
                {
                    "id": "c1",
                    "task": "Counting",
                    "question": "How many?",
                    "image_1": "a.png",
                    "choices": ["1", "2", "3", "4"],
                    "answer": "(C)",
                }
            ]
        )
    )
    records = sorted(load_blink(tmp_path), key=lambda r: r.id)
    assert [r.task for r in records] == ["counting", "jigsaw"]
    assert records[1].answer == "B" and records[0].answer == "C"
    assert records[1].image.size[0] >= 2 * 30 or records[1].image.size == (384, 384)
    assert records[0].image.size == (30, 20)


def test_cli_export_and_preview(tmp_path):
    out = tmp_path / "exp"
    proc = run_cli("data", "export", "--task", "all", "--split", "test", "--n", "2", "--seed", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    lines = (out / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 2 * len(TASKS)
    first = json.loads(lines[0])
    assert set(first) == {
        "id",
        "task",
        "image",
        "question",
        "choices",
        "answer",
        "evidence_mask",
        "concepts",
        "answer_format",
    }
    assert first["answer_format"] == "word"
    records, _ = load_jsonl(out)
    assert records[0].prompt == make_sample(records[0].task, "test", 3, 0).prompt  # the format survives the trip
    png = preview("art_style", tmp_path / "p.png", n=4)
    assert Image.open(png).size[0] >= 4 * 96
    bad = run_cli("data", "export", "--task", "nope", "--out", str(out))
    assert bad.returncode == 2 and "unknown task" in bad.stderr


def test_diagnostic_perception_kinds():
    from livr_viz.data.perception import CURRICULUM, DIAGNOSTIC, PerceptionDataset, make_perception_sample

    assert PerceptionDataset("train", 20).tasks == [f"perception_{k}" for k in CURRICULUM]  # opt-in only
    for i in range(12):
        s = make_perception_sample("pick_option", "train", 0, i)
        assert s.target == s.answer and s.choices[LETTERS.index(s.answer)] == s.concepts["word"]
        assert s.question == f"Which option is {s.concepts['word']}?" and len(set(s.choices)) == 4
        r = make_perception_sample("read_letter", "train", 0, i)
        assert r.target == r.concepts["letter"] and r.choices == list("ABCD")
        a = np.asarray(r.image)
        ink = (a != np.array(D.BACKGROUND)).any(-1) & ~np.isin(
            a.reshape(-1, 3) @ [1, 256, 65536], [c[0] + 256 * c[1] + 65536 * c[2] for c in D.PALETTE.values()]
        ).reshape(a.shape[:2])
        assert (ink & r.evidence).sum() >= 0.5 * (ink & ~r.evidence).sum()  # the letter lies in its evidence box
        c = make_perception_sample("count_letter", "train", 0, i)
        assert c.answer_format == "letter" and c.choices[LETTERS.index(c.answer)] == str(c.concepts["count"])
    assert {make_perception_sample("read_letter", "train", 0, i).answer for i in range(40)} == set("ABCD")
    assert set(DIAGNOSTIC).isdisjoint(CURRICULUM)


def test_match_colour_answer_is_the_candidate_with_the_reference_colour():
    from livr_viz.data.perception import make_perception_sample

    answers = set()
    for i in range(16):
        s = make_perception_sample("match_colour", "val", 0, i)
        a = np.asarray(s.image).reshape(-1, 3)
        ref = D.PALETTE[s.concepts["colour"]]
        # left half of the bottom row is candidate A, right half candidate B (the suite's ref_top layout)
        rows = np.asarray(s.image)[60:, :, :]
        has = [(rows[:, cols] == ref).all(-1).any() for cols in (slice(0, 48), slice(48, 96))]
        assert has[LETTERS.index(s.answer)] and not has[1 - LETTERS.index(s.answer)]
        assert s.choices == ["candidate A", "candidate B"] and (a == ref).all(-1).sum() > 0
        answers.add(s.answer)
    assert answers == {"A", "B"}


def test_placement_starts_over_instead_of_failing_and_keeps_what_it_drew():
    # seed 39: the first disc lands where no second one fits (it used to raise, and crashed box_around questions)
    with pytest.raises(RuntimeError, match="could not place"):
        D.place_disjoint(np.random.default_rng(39), 2, (96, 96), 18.5, margin=3, restarts=1)
    (a, b) = D.place_disjoint(np.random.default_rng(39), 2, (96, 96), 18.5, margin=3)
    assert np.hypot(a[0] - b[0], a[1] - b[1]) > 2 * 18.5 + 3
    for seed in range(20):  # a placement that succeeded first time is unchanged
        once = D.place_disjoint(np.random.default_rng(seed), 2, (96, 96), 18.5, margin=3, restarts=1)
        assert D.place_disjoint(np.random.default_rng(seed), 2, (96, 96), 18.5, margin=3) == once


def test_synthetic_dataset_takes_any_integer_index_and_refuses_others():
    """A sampler's index may be a numpy integer or a 0-d tensor (torch.randperm(...)[k]); each gives the same item as
    the int, and a float or an index past the end is a clear error, not a crash deep in the seeding."""
    import torch

    from livr_viz.data.dataset import SyntheticTaskDataset

    data = SyntheticTaskDataset(["counting", "jigsaw"], "val", 2, 3, answer_format="word")
    want = data[3]
    for index in (np.int64(3), torch.tensor(3)):
        got = data[index]
        assert (got.task, got.prompt, got.target) == (want.task, want.prompt, want.target)
    with pytest.raises(TypeError):
        data[1.0]
    with pytest.raises(IndexError):
        data[len(data)]

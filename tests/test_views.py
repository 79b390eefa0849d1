"""Pictures that tell the truth: tiles carry their scale, the evidence outline and where attention goes; the
dataset view averages over samples; an out-of-distribution input is named as such."""

import numpy as np
import pytest
from PIL import Image

from livr_viz import service as S
from livr_viz.views.heatmaps import SPLIT_COLOURS, attention_tile, evidence_outline

GREEN = np.array([51, 255, 76])


def test_tile_is_a_crisp_grid_with_colour_bar_split_and_outline():
    image = Image.new("RGB", (96, 96), (200, 200, 200))
    heat = np.zeros((8, 8))
    heat[2, 3] = 1.0
    evidence = np.zeros((96, 96), bool)
    evidence[24:48, 24:48] = True
    tile = np.asarray(attention_tile(image, heat, 0.031, "per_latent", [0.5, 0.3, 0.2], evidence, size=192))
    h = 192
    grid = tile[10 : 10 + h]
    cell = grid[2 * 24 : 3 * 24, 3 * 24 : 4 * 24]  # patch (2, 3) at 24 px per patch: one flat colour, no blur
    assert (cell[2:-2, 2:-2] == cell[4, 4]).all()
    assert not (grid[2 * 24 - 1, 3 * 24 + 12] == cell[4, 4]).all()  # the neighbouring cell differs at once
    assert (np.abs(grid.astype(int) - GREEN).sum(-1) < 8).sum() > 4 * 40  # the evidence outline is drawn
    ramp = tile[10 + h + 2]  # the colour bar: dark at 0, bright at the top of the scale
    assert ramp[0].sum() < 60 and ramp[-1].sum() > 400
    top = tile[4]  # the split bar, image / text / latent in order
    assert tuple(top[20]) == SPLIT_COLOURS["image"] and tuple(top[130]) == SPLIT_COLOURS["text"]
    assert tuple(top[180]) == SPLIT_COLOURS["latent"]


def test_evidence_outline_is_a_border():
    mask = np.zeros((10, 10), bool)
    mask[3:7, 3:7] = True
    ring = evidence_outline(mask, (10, 10), width=1)
    assert ring.sum() == 6 * 6 - 4 * 4 and not (ring & mask).any()


@pytest.fixture(scope="module")
def counting_example():
    from livr_viz.data import make_sample

    return str(S.EXAMPLES_DIR / "counting-test-0-0-word.png"), make_sample("counting", "test", 0, 0).prompt


def test_attention_view_tiles_name_the_evidence_and_the_image_share(counting_example):  # the shipped model's view
    path, prompt = counting_example
    v = S.attention_view("demo-livr", path, prompt, "full", None, None, "mean", "per_latent", 0.55)
    assert len(v["tiles"]) == 16
    assert all(" · image " in c and "% · in evidence " in c for _, c in v["tiles"])
    assert "out of distribution" not in v["markdown"]


def test_dataset_view_averages_over_samples():
    v = S.dataset_view("demo-livr", "art_style", 4)
    assert len(v["tiles"]) == 16 and len(v["table"]) == 16
    assert (v["table"]["lift"] > 0).all() and "4 fresh `art_style` samples" in v["markdown"]
    with pytest.raises(S.LIVRError, match="samples must be between"):
        S.dataset_view("demo-livr", "counting", 1)
    with pytest.raises(S.LIVRError):
        S.dataset_view("demo-livr", "no_such_task", 4)


def test_a_photo_is_named_out_of_distribution_and_synthetic_samples_are_not(counting_example):
    path, prompt = counting_example
    photo = S.attention_view(
        "demo-livr", str(S.EXAMPLES_DIR / "photo-flower.jpg"), prompt, "full", None, None, "mean", "per_latent", 0.55
    )
    assert "out of distribution" in photo["markdown"] and "distinct colours" in photo["markdown"]
    from livr_viz.data import make_sample, task_names

    tasks = S.resolve_tasks(S.POOL.get("demo-livr").config.training["tasks"])
    reference = S.notes._OOD_REFERENCES[",".join(tasks)]  # the reference is cached per task list, not per model
    fresh = [make_sample(t, "test", 11, i) for i, t in enumerate(task_names()) for _ in range(3)]
    assert all(S.distinct_colours(s.image) <= S.OOD_MARGIN * reference for s in fresh)


def test_reverse_lookup_and_layer_head_grid(counting_example):  # on the shipped model: its grid and readers
    path, prompt = counting_example
    v = S.patch_readers("demo-livr", path, prompt, "full", 50, 120)  # 192-px display of a 96-px image, 8x8 grid
    assert v["patch"] == (5, 2) and len(v["readers"]) == 17  # 16 latents + the answer row, strongest first
    assert v["readers"]["attention"].is_monotonic_decreasing
    a = S.analysis_for("demo-livr", path, prompt, "full")
    top = v["readers"].iloc[0]
    index = int(top["reader"].split()[-1]) if top["reader"].startswith("latent") else None
    maps = a.latent_maps(None, None, "mean", "none")
    assert index is None or abs(maps[index][5, 2] - top["attention"]) < 1e-6
    with pytest.raises(S.LIVRError, match="click on the image"):
        S.patch_readers("demo-livr", path, prompt, "full", 500, 10)
    grid = S.layer_head_grid("demo-livr", path, prompt)
    n_layers, n_heads = S.lm_dims("demo-livr")
    assert grid.size == (n_heads * S.GRID_CELL, n_layers * (S.GRID_CELL + S.GRID_LABEL))
    assert S.layer_head_at("demo-livr", S.GRID_CELL * 2 + 5, (S.GRID_CELL + S.GRID_LABEL) * 3 + 5) == ("3", "2")
    with pytest.raises(S.LIVRError):
        S.layer_head_at("demo-livr", S.GRID_CELL * n_heads + 1, 5)


def test_token_map_points_are_linked_to_their_samples():
    from livr_viz.data import make_sample

    path, prompt = S.token_map_sample("demo-livr", "4:1733059200000")  # what a click on a point sends
    task, split, seed, index = S.token_map_item(4)
    assert (
        path.endswith(f"{task}-{split}-{seed}-{index}-word.png")
        and prompt == make_sample(task, split, seed, index).prompt
    )
    assert S.synthetic_sample_for(path, prompt) is not None  # the loaded sample keeps its ground truth
    with pytest.raises(S.LIVRError):
        S.token_map_sample("demo-livr", "abc")
    with pytest.raises(S.LIVRError):
        S.token_map_sample("demo-livr", 999)


def test_probe_training_says_how_long_it_will_take_first(tiny_paths):
    lm = S.POOL.get(str(tiny_paths["livr"]))
    from livr_viz.data.dataset import SyntheticTaskDataset

    items = SyntheticTaskDataset("counting", "train", 16, 0)
    assert 0 < S.probe_training_estimate(lm, items) < 600
    with pytest.raises(S.LIVRError, match="no latents to probe"):
        S.probe_view(str(tiny_paths["sft"]), "count", None, None, "full", True)


def test_backend_badge_names_the_kernel_and_warns_on_disagreement(counting_example, monkeypatch):
    path, prompt = counting_example
    a = S.analysis_for("demo-livr", path, prompt, "full")
    assert S.backend_badge("demo-livr", a) == "  \nattention kernel `sdpa`"  # eager and sdpa agree here
    import livr_viz.methods.diagnostics as D
    from livr_viz.core.lru import LRU
    from livr_viz.service import notes

    monkeypatch.setattr(
        D,
        "check_backends",
        lambda lm, items: {"status": "done", "warnings": ["eager vs sdpa (full): KL max 2.0e-02 above 1.0e-04"]},
    )
    monkeypatch.setattr(notes, "_BADGES", LRU(8))  # the badge is computed once per input: forget the first one
    assert "attention kernels disagree on this input" in S.backend_badge("demo-livr", a)


def test_the_mask_and_the_token_map_show_the_answer_tokens_their_legends_name(counting_example):
    from livr_viz.core.segments import Segment

    path, prompt = counting_example
    a = S.analysis_for("demo-livr", path, prompt, "full")
    segments = S.answered_segments("demo-livr", path, prompt, "full")
    answer_ids = S.POOL.get("demo-livr").tokenizer(a.answer, add_special_tokens=False)["input_ids"]
    n_answer = int((segments == int(Segment.ANSWER)).sum())
    assert n_answer == len(answer_ids) + 1  # the model's answer and its end token, as training appends them
    fig = S.token_map_view("demo-livr", path, prompt, "full", "pca", 2, "this image", 12, "segment")
    assert {t.name for t in fig.data} == {"image", "text", "latent", "answer"}
    assert len(next(t for t in fig.data if t.name == "answer").x) == n_answer


def test_an_enlarged_tile_is_drawn_again_not_scaled_up(counting_example):
    path, prompt = counting_example
    small = S.attention_view("demo-livr", path, prompt, "full", "all", "mean", "mean", "per_latent", 0.55)["tiles"][3]
    tile, caption = S.enlarged_tile("demo-livr", path, prompt, "full", "all", "mean", "mean", "per_latent", 0.55, 3)
    assert caption == small[1] and tile.width == S.ENLARGED_TILE == 3 * small[0].width
    row = np.asarray(tile.convert("RGB"))[tile.height // 2]  # one row across the patch grid: flat cells, hard edges
    steps = np.abs(np.diff(row.astype(int), axis=0)).sum(-1)
    assert (steps == 0).mean() > 0.5  # an upscaled (interpolated) 192-px tile would change colour almost everywhere
    with pytest.raises(S.LIVRError, match="no tile 99"):
        S.enlarged_tile("demo-livr", path, prompt, "full", "all", "mean", "mean", "per_latent", 0.55, 99)

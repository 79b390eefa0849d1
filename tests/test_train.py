"""Trainer: only LoRA + latent rows change, stage schedule, SIGKILL + --resume equals an uninterrupted run."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from livr_viz.core.errors import LIVRError
from livr_viz.training.trainer import (
    FULL_FINETUNE_PRESETS,
    OPEN_FROM_BIAS,
    TrainConfig,
    Trainer,
    build_model_for_training,
    preset_config,
    sample_indices,
)

from .conftest import run_cli


def test_schedule_is_four_six_with_a_warmup_and_cosine_per_stage():
    cfg = TrainConfig(variant="livr", steps=100, lr=1.0, warmup_fraction=0.1)
    stages = [cfg.stage_at(s) for s in range(100)]
    assert stages.count("bottleneck") == 40 and stages[:40] == ["bottleneck"] * 40
    assert cfg.lr_at(0) == pytest.approx(0.25) and cfg.lr_at(3) == pytest.approx(1.0)
    assert cfg.lr_at(39) < 0.01 and cfg.lr_at(40) == pytest.approx(1 / 6)  # stage 2 restarts its warmup
    for variant in ("latents_only", "sft"):
        assert {TrainConfig(variant=variant, steps=10).stage_at(s) for s in range(10)} == {"full"}
    slow = TrainConfig(variant="livr", steps=100, lr=1.0, warmup_fraction=0.1, stage2_lr=0.1)  # --stage2-lr
    assert [slow.lr_at(s) for s in range(40)] == [cfg.lr_at(s) for s in range(40)]  # Stage 1 untouched
    assert slow.lr_at(40) == pytest.approx(0.1 / 6) and max(slow.lr_at(s) for s in range(40, 100)) == pytest.approx(0.1)
    with pytest.raises(LIVRError, match="stage2_lr"):
        TrainConfig(variant="livr", stage2_lr=0.0)
    with pytest.raises(LIVRError, match="one stage"):
        TrainConfig(variant="sft", stage2_lr=1e-4)


def test_bad_settings_are_clear_errors():
    with pytest.raises(LIVRError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(LIVRError, match="preset"):
        preset_config("huge")


def test_data_order_is_shared_and_endless():
    a = sample_indices(10, 0, 0, 25)
    assert sorted(a[:10]) == list(range(10)) and sorted(a[10:20]) == list(range(10))
    assert sample_indices(10, 0, 7, 5) == a[7:12]


@pytest.mark.slow
def test_training_changes_only_lora_and_latent_rows(tmp_path, tiny_paths):
    schedule = dict(steps=6, eval_every=0, log_every=1, checkpoint_every=0, n_val_per_task=4)
    cfg = preset_config("quick", variant="livr", tasks="counting,relative_reflectance", **schedule)
    lm = build_model_for_training(tiny_paths["base"], cfg)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    emb_before = lm.base_model.get_input_embeddings()(torch.arange(lm.latent_token_ids[0])).detach().clone()
    Trainer(lm, cfg, tmp_path, progress=False).run()
    changed = {n for n, p in lm.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(("lora_" in n) or ("trainable_tokens" in n) for n in changed), sorted(changed)[:5]
    assert any("trainable_tokens" in n for n in changed) and any("lora_B" in n for n in changed)
    emb_after = lm.base_model.get_input_embeddings()(torch.arange(lm.latent_token_ids[0]))
    assert torch.equal(emb_before, emb_after)  # every non-latent row is bit-identical
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in log if "stage" in r} == {"bottleneck", "full"}
    final = [r for r in log if "eval" in r][-1]  # validation under both masks, the same tasks
    assert set(final["eval_bottleneck"]) == set(final["eval"]) == {"counting", "relative_reflectance"}
    assert 0 <= final["eval_bottleneck_average"] <= 1
    assert (tmp_path / "training.png").stat().st_size > 0 and (tmp_path / "stage1_model" / "livr_config.json").exists()


def _train_args(model, out, *extra, variant="livr", tasks="counting,jigsaw", steps: int | None = 24) -> list[str]:
    """``livr-viz train`` on the quick preset (``steps=None``: the preset's), for ``main`` or a subprocess."""
    head = ["train", "--model", model, "--variant", variant, "--tasks", tasks, "--preset", "quick"]
    return [*head, *(["--steps", str(steps)] if steps else []), "--out", str(out), *extra]


def _train_cmd(model, out, *extra):
    return [sys.executable, "-m", "livr_viz.cli", *_train_args(model, out, *extra)]


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoint" / "trainable.safetensors"))


def _largest_difference(a: dict, b: dict) -> float:
    return max(float((a[n] - b[n]).abs().max()) for n in a)


def _log_records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_paths):
    env = {**os.environ, "TQDM_DISABLE": "1"}
    base = tiny_paths["base"]
    subprocess.run(_train_cmd(base, tmp_path / "straight"), check=True, capture_output=True, env=env, timeout=600)
    proc = subprocess.Popen(
        _train_cmd(base, tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    state = tmp_path / "killed" / "checkpoint" / "trainer_state.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        try:
            if json.loads(state.read_text())["step"] >= 8:
                break
        except FileNotFoundError:  # not written yet, or between the two renames of a swap
            pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not state.exists():  # killed between the two renames of a checkpoint swap: --resume moves .old back
        state = tmp_path / "killed" / "checkpoint.old" / "trainer_state.json"
    step = json.loads(state.read_text())["step"]
    assert 8 <= step < 24, "the run finished before it could be killed"
    subprocess.run(
        _train_cmd(base, tmp_path / "killed", "--resume"), check=True, capture_output=True, env=env, timeout=600
    )
    straight_log, killed_log = _log_records(tmp_path / "straight"), _log_records(tmp_path / "killed")
    lines = [[(r["step"], "loss" in r) for r in log] for log in (straight_log, killed_log)]
    assert lines[1] == lines[0]  # every line once: none lost or duplicated by the resume
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "killed")
    assert a.keys() == b.keys()
    differing = [name for name in a if not torch.equal(a[name], b[name])]
    if not differing:
        return  # bit for bit: weights, AdamW moments, data order and the dropout stream all came back
    # Not bit-identical. That is a resume bug, unless this machine's float arithmetic is not reproducible from one
    # process to the next at all, which a second uninterrupted run tells apart.
    straight, killed = ({r["step"]: r["loss"] for r in log if "loss" in r} for log in (straight_log, killed_log))
    first = min((s for s in straight if straight[s] != killed.get(s)), default=None)
    subprocess.run(_train_cmd(base, tmp_path / "again"), check=True, capture_output=True, env=env, timeout=600)
    again = _final_weights(tmp_path / "again")
    rerun, resumed = _largest_difference(a, again), _largest_difference(a, b)
    what = (
        f"resumed from step {step}: {len(differing)} tensors differ from the uninterrupted run (largest "
        f"difference {resumed:.2e}, first differing logged loss at step {first}); a second uninterrupted run "
        f"differs by {rerun:.2e}"
    )
    assert rerun > 0, what + ", i.e. not at all: the resume restores something wrongly"
    assert resumed <= 4 * rerun, what + ": the resume adds more than this machine's run-to-run noise"


def test_a_branch_from_stage_1_ends_where_a_straight_run_with_its_stage_2_rate_does(tmp_path, tiny_paths):
    """Stage-2 choices compared from one Stage 1: a run branched from another run's end of Stage 1 with another
    Stage-2 rate ends with the weights of a straight run at that rate, and keeps the Stage-1 log and model."""
    settings = dict(variant="livr", tasks="counting", steps=6, stage1_fraction=0.5, eval_every=0, n_val_per_task=2)
    runs = {}
    for name, stage2_lr in (("first", None), ("straight", 5e-4)):
        cfg = preset_config("quick", stage2_lr=stage2_lr, **settings)
        Trainer(build_model_for_training(tiny_paths["base"], cfg), cfg, tmp_path / name, progress=False).run()
        runs[name] = cfg
    assert json.loads((tmp_path / "first" / "stage1_checkpoint" / "trainer_state.json").read_text())["step"] == 3
    cfg = runs["straight"]
    lm = build_model_for_training(tiny_paths["base"], cfg)
    Trainer(lm, cfg, tmp_path / "branch", progress=False).run(branch_from=tmp_path / "first")
    a, b = _final_weights(tmp_path / "straight"), _final_weights(tmp_path / "branch")
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], _final_weights(tmp_path / "first")[n]) for n in a)  # the rates differ
    straight, branch = _log_records(tmp_path / "straight"), _log_records(tmp_path / "branch")
    assert [r["step"] for r in branch] == [r["step"] for r in straight]
    assert [r.get("loss") for r in branch] == [r.get("loss") for r in straight]  # Stage 1 copied, Stage 2 trained
    assert (tmp_path / "branch" / "stage1_model" / "livr_config.json").is_file()
    record = json.loads((tmp_path / "branch" / "branch.json").read_text())
    assert record["step"] == 3 and record["branched_from"] == str((tmp_path / "first").resolve())


def test_stage_2_can_open_the_image_gradually_and_a_branch_may_choose_to(tmp_path, tiny_paths):
    """``stage2_open_steps``: the text rows' image keys carry a bias rising from ``OPEN_FROM_BIAS`` to 0 over the first
    Stage-2 steps (logged), the model trains on that mask, and a branch from a plain run's Stage 1 may choose it."""
    settings = dict(variant="livr", tasks="counting", steps=6, stage1_fraction=0.5, eval_every=0, n_val_per_task=2)
    settings.update(log_every=1)
    for name, open_steps in (("first", 0), ("ramp", 2)):
        cfg = preset_config("quick", stage2_open_steps=open_steps, **settings)
        Trainer(build_model_for_training(tiny_paths["base"], cfg), cfg, tmp_path / name, progress=False).run()
    first, ramp = ([r for r in _log_records(tmp_path / n) if "loss" in r] for n in ("first", "ramp"))
    assert [r.get("image_bias") for r in ramp] == [None] * 3 + [OPEN_FROM_BIAS, OPEN_FROM_BIAS / 2, None]
    assert [r["loss"] for r in ramp][:3] == [r["loss"] for r in first][:3]  # Stage 1 is the same
    assert ramp[3]["loss"] != first[3]["loss"]  # the first Stage-2 step sees the image at e^-50 of its weight
    cfg = preset_config("quick", stage2_open_steps=2, **settings)
    lm = build_model_for_training(tiny_paths["base"], cfg)
    Trainer(lm, cfg, tmp_path / "branch", progress=False).run(branch_from=tmp_path / "first")
    a, b = _final_weights(tmp_path / "ramp"), _final_weights(tmp_path / "branch")
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    with pytest.raises(LIVRError, match="no step of Stage 2 fully open"):
        preset_config("quick", stage2_open_steps=3, **settings)
    with pytest.raises(LIVRError, match="variant sft has no Stage 1"):
        TrainConfig(variant="sft", stage2_open_steps=10)
    proc = run_cli(*_train_args(tiny_paths["base"], tmp_path / "cli", "--stage2-open-steps", "-1"))
    assert proc.returncode == 2 and "stage2_open_steps" in proc.stderr and not (tmp_path / "cli").exists()


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_a_slower_stage_1_body_takes_that_fraction_of_the_step_except_in_the_latent_rows(
    tmp_path, tiny_paths, finetune
):
    """``stage1_body_lr_scale``: in Stage 1 every trained parameter but the latent rows moves as at that fraction of
    the rate (AdamW's step is linear in it); the latent rows take the full step."""
    settings = dict(
        finetune=finetune,
        variant="livr",
        tasks="counting",
        steps=2,
        stage1_fraction=0.5,
        eval_every=0,
        n_val_per_task=2,
    )

    def one_stage1_step(name, **extra):
        cfg = preset_config("quick", **settings, **extra)
        lm = build_model_for_training(tiny_paths["base"], cfg)
        init = {n: p.detach().clone() for n, p in lm.model.named_parameters() if p.requires_grad}
        Trainer(lm, cfg, tmp_path / name, progress=False).run()
        return cfg, lm, init, load_file(str(tmp_path / name / "stage1_checkpoint" / "trainable.safetensors"))

    cfg, lm, init, slow = one_stage1_step("slow", stage1_body_lr_scale=0.25)
    _, _, _, scaled = one_stage1_step("scaled", lr=cfg.lr * 0.25)
    _, _, _, full = one_stage1_step("full")
    rows = lm.config.latent_token_ids
    latent_names = [n for n in slow if "trainable_tokens" in n or "embed_tokens" in n]
    assert latent_names, "the latent rows' parameter is among the trained ones"
    for n in slow:
        if "trainable_tokens" in n:  # LoRA: a parameter of latent rows only takes the full step
            torch.testing.assert_close(slow[n], full[n])
        elif "embed_tokens" in n and slow[n].shape[0] > max(rows):  # a full fine-tune's embedding matrix
            torch.testing.assert_close(slow[n][rows], full[n][rows])
            others = [i for i in range(slow[n].shape[0]) if i not in rows]
            torch.testing.assert_close(slow[n][others], scaled[n][others])
            assert not torch.equal(full[n][rows], init[n][rows])
        else:
            torch.testing.assert_close(slow[n], scaled[n], rtol=1e-5, atol=1e-7)
    moved = [
        n for n in slow if not torch.equal(full[n], init[n]) and "trainable_tokens" not in n and n not in latent_names
    ]
    assert moved and any(not torch.equal(slow[n], full[n]) for n in moved)  # the body really moved less
    # scale 0: Stage 1 trains the latent rows alone
    _, _, init0, frozen = one_stage1_step("frozen", stage1_body_lr_scale=0.0)
    for n in frozen:
        if n in latent_names and frozen[n].shape[0] > max(rows):
            others = [i for i in range(frozen[n].shape[0]) if i not in rows]
            assert torch.equal(frozen[n][others], init0[n][others]) and not torch.equal(frozen[n][rows], init0[n][rows])
        elif n not in latent_names:
            assert torch.equal(frozen[n], init0[n]), n


def test_stage1_body_lr_scale_is_checked(tmp_path, tiny_paths):
    proc = run_cli(*_train_args(tiny_paths["base"], tmp_path / "cli", "--stage1-body-lr-scale", "-0.5"))
    assert proc.returncode == 2 and "stage1_body_lr_scale" in proc.stderr and not (tmp_path / "cli").exists()
    with pytest.raises(LIVRError, match="stage1_body_lr_scale"):
        TrainConfig(variant="livr", stage1_body_lr_scale=1.5)
    with pytest.raises(LIVRError, match="no Stage 1"):
        TrainConfig(variant="latents_only", stage1_body_lr_scale=0.1)


def test_a_branch_is_refused_where_stage_1_would_differ(tmp_path, tiny_paths):
    settings = dict(variant="livr", tasks="counting", stage1_fraction=0.5, eval_every=0, n_val_per_task=2)
    first = preset_config("quick", steps=4, **settings)
    Trainer(build_model_for_training(tiny_paths["base"], first), first, tmp_path / "first", progress=False).run()

    def branch(cfg, out="b", source="first"):
        lm = build_model_for_training(tiny_paths["base"], cfg)
        Trainer(lm, cfg, tmp_path / out, progress=False).run(branch_from=tmp_path / source)

    with pytest.raises(LIVRError, match="may change only stage2_lr.*|steps: 4 -> 6"):
        branch(preset_config("quick", steps=6, **settings))
    with pytest.raises(LIVRError, match="lr: "):
        branch(preset_config("quick", steps=4, lr=1e-3, **settings))
    with pytest.raises(LIVRError, match="no Stage-1 checkpoint"):
        branch(preset_config("quick", steps=4, stage2_lr=1e-4, **settings), source="nowhere")
    sft = dict(settings, variant="sft", stage1_fraction=0.4)
    with pytest.raises(LIVRError, match="LIVR run with both stages"):
        branch(preset_config("quick", steps=4, **sft))
    with pytest.raises(LIVRError, match="give one of them"):
        Trainer(build_model_for_training(tiny_paths["base"], first), first, tmp_path / "c", progress=False).run(
            resume=True, branch_from=tmp_path / "first"
        )
    assert not (tmp_path / "b" / "checkpoint").exists()  # nothing was trained by a refused branch
    proc = run_cli(*_train_args(tiny_paths["base"], tmp_path / "cli", "--branch-from", str(tmp_path / "none")))
    assert proc.returncode == 2 and "no Stage-1 checkpoint" in proc.stderr


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, tiny_paths):
    proc = run_cli(*_train_args(tiny_paths["base"], tmp_path / "none", "--resume"))
    assert proc.returncode == 2 and "no checkpoint" in proc.stderr


def test_unwritable_checkpoint_is_a_clear_error_and_keeps_the_last_one(tmp_path, tiny_paths):
    cfg = preset_config(
        "quick", variant="sft", tasks="counting", steps=4, eval_every=0, checkpoint_every=2, n_val_per_task=2
    )
    lm = build_model_for_training(tiny_paths["base"], cfg)
    trainer = Trainer(lm, cfg, tmp_path, progress=False)
    trainer.run()
    final = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()][-1]
    assert "eval" in final and "eval_bottleneck" not in final  # no latents, no bottleneck route to measure
    before = (tmp_path / "checkpoint" / "trainable.safetensors").read_bytes()
    (tmp_path / "checkpoint.tmp").write_text("a file where the temp dir must go: writing fails like a full disk")
    with pytest.raises(LIVRError, match="last complete checkpoint \\(step 4\\) is intact"):
        from livr_viz.training.trainer import save_checkpoint

        save_checkpoint(tmp_path / "checkpoint", lm, trainer.optimizer, 6, cfg)
    assert (tmp_path / "checkpoint" / "trainable.safetensors").read_bytes() == before


def test_a_swap_killed_between_its_renames_keeps_the_old_copy(tmp_path):
    from livr_viz.core.fsutil import fresh_tmp_dir, recover_dir, replace_dir

    target = tmp_path / "checkpoint"
    for content in ("first", "second"):
        tmp = fresh_tmp_dir(target)
        (tmp / "f").write_text(content)
        replace_dir(tmp, target)
    assert (target / "f").read_text() == "second" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    # killed after "target -> target.old" and before "target.tmp -> target"
    target.rename(tmp_path / "checkpoint.old")
    (fresh_tmp_dir(target) / "f").write_text("third")
    tmp = fresh_tmp_dir(target)  # the next write starts over, and must not delete the only complete copy
    (tmp / "f").write_text("fourth")
    replace_dir(tmp, target)
    assert (target / "f").read_text() == "fourth" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    target.rename(tmp_path / "checkpoint.old")
    assert recover_dir(target) and (target / "f").read_text() == "fourth" and not recover_dir(target)


@pytest.mark.slow
def test_resume_recovers_a_checkpoint_left_in_old_by_a_kill(tmp_path, tiny_paths):
    cfg = preset_config(
        "quick", variant="sft", tasks="counting", steps=2, eval_every=0, checkpoint_every=1, n_val_per_task=2
    )
    Trainer(build_model_for_training(tiny_paths["base"], cfg), cfg, tmp_path, progress=False).run()
    before = load_file(str(tmp_path / "checkpoint" / "trainable.safetensors"))
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")  # the kill came between the swap's renames
    (tmp_path / "checkpoint.tmp").mkdir()
    lm = build_model_for_training(tiny_paths["base"], cfg)
    Trainer(lm, cfg, tmp_path, progress=False).run(resume=True)
    assert json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())["step"] == 2
    after = load_file(str(tmp_path / "checkpoint" / "trainable.safetensors"))
    assert all(torch.equal(before[n], after[n]) for n in before)  # resumed at the end: nothing trained twice
    assert not (tmp_path / "checkpoint.old").exists() and not (tmp_path / "checkpoint.tmp").exists()


def test_the_checkpoint_counts_training_time_over_every_resumed_part(tmp_path, tiny_paths):
    """A run stopped at step 2 and resumed to 4 records the time of both parts (reproduce's time.json reads it); a
    checkpoint from before this was recorded gives "not known", never the last part's time alone."""
    settings = dict(variant="sft", tasks="counting", eval_every=0, checkpoint_every=1, n_val_per_task=2)
    first = preset_config("quick", steps=2, **settings)
    Trainer(build_model_for_training(tiny_paths["base"], first), first, tmp_path, progress=False).run()
    state = tmp_path / "checkpoint" / "trainer_state.json"
    part_one = json.loads(state.read_text())["elapsed_s"]
    assert part_one > 0
    saved = json.loads(state.read_text())
    saved["config"]["steps"] = 4  # the same run, stopped half-way
    state.write_text(json.dumps(saved))
    (tmp_path / "model").rename(tmp_path / "model-part-one")
    second = preset_config("quick", steps=4, **settings)
    Trainer(build_model_for_training(tiny_paths["base"], second), second, tmp_path, progress=False).run(resume=True)
    assert json.loads(state.read_text())["elapsed_s"] > part_one
    saved = json.loads(state.read_text())
    saved.pop("elapsed_s")  # an older checkpoint
    state.write_text(json.dumps(saved))
    trainer = Trainer(build_model_for_training(tiny_paths["base"], second), second, tmp_path, progress=False)
    trainer.run(resume=True)
    assert json.loads(state.read_text())["elapsed_s"] is None


@pytest.mark.slow
def test_two_process_cpu_launch_with_accelerate(tmp_path, tiny_paths):
    """The same trainer under `accelerate launch` with 2 CPU processes (gloo): both ranks step, rank 0 writes."""
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--cpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "livr_viz.cli",
        "train",
        "--model",
        tiny_paths["base"],
        "--variant",
        "livr",
        "--tasks",
        "counting",
        "--preset",
        "quick",
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "model" / "adapter_model.safetensors").exists()
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r][-1] == 4


@pytest.mark.slow
def test_reproduce_quick_preset_writes_results(tmp_path):
    from tools.reproduce import reproduce

    results = reproduce(tmp_path, preset="quick", tasks="counting,jigsaw", n_test=8, log=lambda *a: None)
    assert set(results["eval"]) >= {"sft", "latents_only", "livr", "livr_stage1_only"}
    text = (tmp_path / "RESULTS.md").read_text()
    assert "| counting |" in text and "## Targets" in text and (tmp_path / "results.png").stat().st_size > 0
    assert "Vision-tower pretraining" in text and "Word curriculum" in text
    # the paper's "are the latents used?" table, and LIVR − SFT as a paired comparison on the same questions
    assert "| latents removed (nobody reads them) |" in text and "mean answer → latent attention" in text
    paired = results["paired"]["livr_vs_sft"]
    assert set(paired["tasks"]) == {"counting", "jigsaw"} and paired["average"]["n"] == 16
    # the targets: the §4.6 contrast under the bottleneck and the blinding cost, paired on the same questions
    assert results["paired"]["livr_vs_latents_only_bottleneck"]["average"]["n"] == 16
    assert results["paired"]["livr_standard_vs_blind"]["average"]["n"] == 16
    assert "Under a test-time bottleneck, LIVR ≥ latents-only + 10 points" in text
    assert "Blinding LIVR's latents costs at least 5 points" in text and "LIVR against SFT:" in text
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert len(predictions["livr"]["removed"]) == 16 and set(predictions["sft"]) == {"standard"}
    assert "- Backbone: 3.1 M parameters; language model 4 layers of width 192" in text
    # a finished backbone is enough to (re)run the fine-tunes: the earlier phases' models may be gone
    for folder in ("vision", "pretrain-colour"):
        shutil.rmtree(tmp_path / folder / "model")
    shutil.rmtree(tmp_path / "sft" / "model")
    again = reproduce(tmp_path, preset="quick", tasks="counting,jigsaw", n_test=8, log=lambda *a: None)
    assert again["seconds"]["vision"] == again["seconds"]["pretrain_colour"] == again["seconds"]["pretrain"] == 0.0
    assert again["seconds"]["pretrain_words"] == 0.0
    assert again["seconds"]["livr"] == 0.0 and again["seconds"]["sft"] > 0
    assert not (tmp_path / "vision" / "model").exists()
    assert "Vision-tower pretraining" in (tmp_path / "RESULTS.md").read_text()  # the logs still describe them
    # asking for other fine-tune settings in the same OUT is an error, not a silent reuse of the old models
    with pytest.raises(LIVRError, match=r"trained with other settings \(tasks: 'counting,jigsaw' -> 'counting'"):
        reproduce(tmp_path, preset="quick", tasks="counting", n_test=8, log=lambda *a: None)
    assert (tmp_path / "sft" / "model").is_dir() and (tmp_path / "livr" / "model").is_dir()


@pytest.mark.slow
def test_reproduce_quick_preset_with_the_spatial_reader(tmp_path):
    """The spatial-reader design end to end: a fresh backbone with the conv tower, stage 0 with the comparison
    heads, the pretraining phases, the three fine-tunes and the evaluation."""
    from tools.reproduce import reproduce

    settings = dict(
        preset="quick", tasks="counting", n_test=4, tower="spatial", vision_compare=True, half_backbone=True
    )
    # one fine-tune alone (as a second process would train it beside the others), then the whole command
    trained = reproduce(tmp_path, variants=["livr"], log=lambda *a: None, **settings)
    assert trained["trained"] == ["livr"] and not (tmp_path / "results.json").exists()
    assert (tmp_path / "livr" / "model").is_dir() and not (tmp_path / "sft").exists()
    results = reproduce(tmp_path, log=lambda *a: None, **settings)
    assert results["seconds"]["livr"] == 0.0 and results["seconds"]["sft"] > 0
    assert results["backbone_config"]["tower"] == "spatial" and results["vision_config"]["compare"] is True
    assert set(results["eval"]) >= {"sft", "latents_only", "livr", "livr_stage1_only"}
    log = [json.loads(line) for line in (tmp_path / "vision" / "log.jsonl").read_text().splitlines()]
    assert "loss_compare" in log[-1]
    config = json.loads((tmp_path / "livr" / "model" / "livr_config.json").read_text())
    assert config["variant"] == "livr"
    backbone = json.loads((tmp_path / "init" / "config.json").read_text())
    assert backbone["vision_config"]["model_type"] == "livr_spatial_reader"
    started = json.loads((tmp_path / "sft" / "backbone.json").read_text())["backbone"]
    assert started == str((tmp_path / "pretrain-words" / "model-float16").resolve()) and results["half_backbone"]
    assert "rounded to float16" in (tmp_path / "RESULTS.md").read_text()


@pytest.mark.slow
def test_resume_with_other_settings_is_a_clear_error(tmp_path, tiny_paths):
    base = tiny_paths["base"]
    cfg = preset_config(
        "quick", variant="sft", tasks="counting", steps=2, eval_every=0, checkpoint_every=1, n_val_per_task=2
    )
    Trainer(build_model_for_training(base, cfg), cfg, tmp_path, progress=False).run()
    before = (tmp_path / "checkpoint" / "trainable.safetensors").read_bytes()
    changed = preset_config(
        "quick", variant="sft", tasks="counting", steps=4, lr=1e-3, eval_every=5, checkpoint_every=1, n_val_per_task=2
    )  # eval_every is bookkeeping: not reported
    with pytest.raises(LIVRError, match=r"other settings \(steps: 2 -> 4; lr: 0\.002 -> 0\.001\)"):
        Trainer(build_model_for_training(base, changed), changed, tmp_path, progress=False).run(resume=True)
    assert (tmp_path / "checkpoint" / "trainable.safetensors").read_bytes() == before
    again = preset_config(
        "quick", variant="sft", tasks="counting", steps=2, eval_every=5, checkpoint_every=1, n_val_per_task=2
    )
    Trainer(build_model_for_training(base, again), again, tmp_path, progress=False).run(resume=True)


def test_pretraining_can_keep_the_vision_tower_frozen(tiny_paths):
    cfg = preset_config("quick", pretrain=True, steps=2)
    assert cfg.full_finetune and not cfg.freeze_vision_tower  # the shipped backbone's recipe: the tower trains
    lm = build_model_for_training(tiny_paths["base"], cfg)
    assert all(p.requires_grad for p in lm.family.vision_encoder_parameters(lm.model))
    frozen = build_model_for_training(
        tiny_paths["base"], preset_config("quick", pretrain=True, steps=2, freeze_vision_tower=True)
    )
    assert not any(p.requires_grad for p in frozen.family.vision_encoder_parameters(frozen.model))
    with pytest.raises(LIVRError, match="freeze_vision_tower needs full_finetune"):
        TrainConfig(variant="sft", freeze_vision_tower=True)


def test_reproduce_variants_none_trains_the_backbone_and_stops(tmp_path, monkeypatch):
    """``--variants none``: the backbone's phases only, no fine-tune, no evaluation (a first check on a new backbone
    before its trio)."""
    from tools import reproduce as rep

    seen = []

    def fake_phase(backbone, cfg, out, branch_from=None):
        def run():
            seen.append(cfg)
            (out / "model").mkdir(parents=True)

        return run

    monkeypatch.setattr(rep, "_trainer_phase", fake_phase)
    (tmp_path / "pretrain" / "model").mkdir(parents=True)
    assert rep.build_parser().parse_args(["--variants", "none"]).variants == []
    with pytest.raises(SystemExit):
        rep.build_parser().parse_args(["--variants", "sft,none"])
    trained = rep.reproduce(tmp_path, preset="quick", tasks="counting", variants=[], log=lambda *a: None)
    assert trained["trained"] == [] and [c.tasks for c in seen] == ["perception:words"]
    assert not any((tmp_path / v).exists() for v in rep.VARIANTS) and not (tmp_path / "results.json").exists()
    # the command line ends with 0 after it, not with a crash on the evaluation's missing total time
    assert rep.main(["--out", str(tmp_path), "--preset", "quick", "--tasks", "counting", "--variants", "none"]) == 0


def test_reproduce_seed_grad_accum_and_task_balance_reach_the_fine_tunes(tmp_path, monkeypatch):
    """``--seed`` reaches every fine-tune config as both seeds (init + dropout, and the training data draw), and
    ``--grad-accum`` as the fine-tunes' micro-batches per step, ``--task-balance`` as theirs."""
    from tools import reproduce as rep

    class Evaluating(Exception):
        pass

    def fake_phase(backbone, cfg, out, branch_from=None):
        def run():
            seen.append(cfg)
            branches[cfg.variant] = branch_from
            (out / "model").mkdir(parents=True)

        return run

    def stop(*args, **kwargs):
        raise Evaluating

    seen, branches = [], {}
    monkeypatch.setattr(rep, "_trainer_phase", fake_phase)
    monkeypatch.setattr(rep, "load_model", stop)
    (tmp_path / "pretrain" / "model").mkdir(parents=True)
    with pytest.raises(Evaluating):  # every fine-tune ran (faked); the evaluation is not this test's business
        rep.reproduce(
            tmp_path,
            preset="quick",
            tasks="counting",
            seed=7,
            grad_accum=3,
            task_balance="grad_norm",
            log=lambda *a: None,
        )
    assert all(not c.task_weights for c in seen)
    assert seen[0].tasks == "perception:words" and seen[0].full_finetune  # stage 1c, on the given backbone
    assert not seen[0].freeze_vision_tower  # the tower trains after stage 0 unless asked
    assert [(c.variant, c.seed, c.data_seed, c.grad_accum, c.task_balance) for c in seen[1:]] == [
        (v, 7, 7, 3, "grad_norm") for v in rep.VARIANTS
    ]
    (tmp_path / "again" / "pretrain" / "model").mkdir(parents=True)
    seen.clear()
    with pytest.raises(Evaluating):
        rep.reproduce(
            tmp_path / "again", preset="quick", tasks="counting", freeze_vision_tower=True, log=lambda *a: None
        )
    assert seen[0].tasks == "perception:words" and seen[0].freeze_vision_tower

    def configs_of(name: str, **settings) -> None:  # a run with a backbone in place: the configs it trains
        (tmp_path / name / "pretrain" / "model").mkdir(parents=True)
        seen.clear()
        with pytest.raises(Evaluating):
            rep.reproduce(tmp_path / name, preset="quick", tasks="counting,jigsaw", log=lambda *a: None, **settings)

    configs_of(
        "weighted",
        task_weights={"jigsaw": 3},
        stage2_lr=1e-4,
        stage1_body_lr_scale=0.1,
        stage2_open_steps=2,
        stage1_fraction=0.5,
    )
    assert not seen[0].task_weights  # the word curriculum is not a task-suite fine-tune
    assert [c.task_weights for c in seen[1:]] == [{"jigsaw": 3}] * len(rep.VARIANTS)
    assert [(c.variant, c.stage2_lr) for c in seen[1:]] == [(v, 1e-4 if v == "livr" else None) for v in rep.VARIANTS]
    assert [c.stage1_body_lr_scale for c in seen[1:]] == [0.1 if v == "livr" else 1.0 for v in rep.VARIANTS]
    assert [c.stage2_open_steps for c in seen[1:]] == [2 if v == "livr" else 0 for v in rep.VARIANTS]
    assert [c.stage1_fraction for c in seen[1:]] == [0.5 if v == "livr" else 0.0 for v in rep.VARIANTS]
    configs_of("focus", stage1_focus="jigsaw", stage1_focus_steps=3, stage1_focus_share=0.75)
    focus = [(c.stage1_focus, c.stage1_focus_steps, c.stage1_focus_share) for c in seen[1:]]
    assert focus == [("jigsaw", 3, 0.75) if v == "livr" else ("", 0, 0.5) for v in rep.VARIANTS]
    (tmp_path / "full" / "pretrain" / "model").mkdir(parents=True)
    seen.clear()
    with pytest.raises(Evaluating):
        rep.reproduce(tmp_path / "full", preset="demo", tasks="counting", finetune="full", log=lambda *a: None)
    assert seen[0].tasks == "perception:words"  # the backbone's phases are the same
    demo = FULL_FINETUNE_PRESETS["demo"]
    assert [(c.variant, c.full_finetune, c.lr, c.steps, c.n_train_per_task) for c in seen[1:]] == [
        (v, True, demo["lr"], demo["steps"], demo["n_train_per_task"]) for v in rep.VARIANTS
    ]
    # --livr-branch-from: only LIVR's fine-tune starts from the other run's Stage 1, which must share the backbone
    source = tmp_path / "stage2lr3e-4" / "livr"
    source.mkdir(parents=True)
    (source / "backbone.json").write_text(json.dumps({"backbone": "/elsewhere/model"}))
    (tmp_path / "branch" / "pretrain" / "model").mkdir(parents=True)
    with pytest.raises(LIVRError, match="was fine-tuned from /elsewhere/model"):
        rep.reproduce(tmp_path / "branch", preset="quick", tasks="counting", livr_branch_from=source, log=print)
    backbone = str((tmp_path / "branch" / "pretrain-words" / "model").resolve())
    (source / "backbone.json").write_text(json.dumps({"backbone": backbone}))
    with pytest.raises(Evaluating):
        rep.reproduce(tmp_path / "branch", preset="quick", tasks="counting", livr_branch_from=source, log=print)
    assert branches == {"sft": None, "latents_only": None, "livr": source}


def test_reproduce_starts_from_a_backbone_given_in_out_init(tmp_path, monkeypatch):
    """A backbone of another size placed at OUT/init (`livr-viz build-demo --out OUT/init ...`) is where stage 0
    starts, untouched; the shipped-size random init is written only when OUT/init is empty."""
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone
    from tools import reproduce as rep

    class Started(Exception):
        pass

    def stop(init, cfg, out, log=print):
        seen.append(Path(init))
        steps.append(cfg.steps)
        markers.append(cfg.markers)
        raise Started

    seen, steps, markers = [], [], []
    monkeypatch.setattr(rep, "pretrain_vision", stop)
    save_demo_backbone(tmp_path / "init", DemoBackboneConfig(text_hidden=96, text_layers=2, text_heads=4))
    with pytest.raises(Started):
        rep.reproduce(tmp_path, preset="quick", tasks="counting", log=lambda *a: None)
    with pytest.raises(Started):  # --vision-steps sets stage 0's length, --vision-markers its images and heads
        rep.reproduce(
            tmp_path, preset="quick", tasks="counting", vision_steps=9, vision_markers=True, log=lambda *a: None
        )
    with pytest.raises(LIVRError, match="steps=0"):
        rep.reproduce(tmp_path, preset="quick", tasks="counting", vision_steps=0, log=lambda *a: None)
    assert seen == [tmp_path / "init"] * 2 and steps == [6, 9] and markers == [False, True]
    assert rep.backbone_size(tmp_path / "init") | {"parameters": 0} == {
        "parameters": 0,
        "text_hidden": 96,
        "text_layers": 2,
        "vision_hidden": 128,
        "vision_layers": 4,
        "image_size": 96,
        "patch_size": 12,
    }


def test_results_md_names_a_given_backbone_and_the_accumulated_batch(tmp_path):
    from tools.reproduce import _batch, backbone_section

    (tmp_path / "pretrain" / "model").mkdir(parents=True)
    text = "\n".join(backbone_section(tmp_path))
    assert "was given, not pretrained here" in text and "no pretraining logs" in text
    assert _batch({"batch_size": 32, "grad_accum": 1}) == "32"
    assert _batch({"batch_size": 32, "grad_accum": 2}) == "32 × 2 micro-batches (64 per step)"
    assert "same norm" in _batch({"batch_size": 32, "grad_accum": 9, "task_balance": "grad_norm"})
    weighted = _batch({"batch_size": 32, "task_weights": {"jigsaw": 4}})
    assert "weighted in every batch (jigsaw 4; the others 1" in weighted


@pytest.mark.slow
def test_bundled_livr_answers_art_style_through_its_latents():
    """The shipped nine-task LIVR (every parameter, 5,000 steps; RESULTS.md: art style 78.2 % on 500 test questions,
    62.4 % under the bottleneck, where the shipped latents-only has 56.6 %). Measured on these 100: 82 % in view,
    59 % with the latents blinded, 65 % under the bottleneck, 50 % under the bottleneck with the latents blinded."""
    from livr_viz.core.model import load_model
    from livr_viz.data.dataset import SyntheticTaskDataset
    from livr_viz.service import compare_set
    from livr_viz.training.evaluate import evaluate

    test = SyntheticTaskDataset("art_style", "test", 100, 2026)
    livr = load_model("demo-livr")
    assert (livr.config.answer_format, livr.config.latent_placement, livr.config.backbone) == (
        "word",
        "end_of_prompt",
        "demo-base",
    )
    assert livr.config.variant == "livr" and livr.config.training["tasks"] == "all"
    assert livr.config.finetune == "full" and livr.config.trained_steps == 5000

    def acc(stage, blind=False):
        return evaluate(livr, test, stage, block_latent_image=blind)["average"]["accuracy"]

    full = acc("full")
    assert full >= 0.7 and acc("full", blind=True) <= full - 0.1  # chance 0.5; blinding the latents costs
    assert acc("bottleneck") >= 0.6  # the answer rows see no image: what is left came through the latents
    assert acc("bottleneck", blind=True) <= 0.55  # cut the latents off the image as well: chance
    assert compare_set("demo-livr") == ("demo-livr", "demo-latents-only", "demo-sft")
    assert load_model("demo-sft").config.variant == "sft"


def test_reproduce_full_preset_is_the_long_full_fine_tune(tmp_path):
    """``reproduce --preset full`` is the shipped trio's recipe: the demo backbone's phases, then 5,000 full
    fine-tune steps a variant; refused with LoRA, before any work."""
    from tools.reproduce import reproduce

    with pytest.raises(LIVRError, match="use it with --finetune full"):
        reproduce(tmp_path / "lora", preset="full", log=lambda *a: None)
    with pytest.raises(LIVRError, match="reproduce presets: quick, demo, full"):
        reproduce(tmp_path / "paper", preset="paper", finetune="full", log=lambda *a: None)
    assert not (tmp_path / "lora").exists() and not (tmp_path / "paper").exists()
    livr = preset_config("full", finetune="full", variant="livr", tasks="all")
    assert (livr.steps, livr.stage1_steps, livr.lr, livr.full_finetune) == (5000, 2000, 3e-4, True)


def test_install_ships_full_fine_tunes_whole_and_points_them_at_the_bundled_backbone(tmp_path, tiny_paths, monkeypatch):
    """``reproduce --install`` copies the backbone to demo-base and each fine-tune over its bundled name: a whole
    model (``--finetune full``) replaces an adapter folder entirely, and its config names ``demo-base``, not the
    run's path (here into a scratch assets folder, never the repository's)."""
    import tools.reproduce as R
    from livr_viz.core.model import LIVRModel, load_model

    run, assets = tmp_path / "run", tmp_path / "assets"
    shutil.copytree(tiny_paths["base"], run / "pretrain-words" / "model")
    for variant in ("livr", "latents_only", "sft"):
        LIVRModel.from_backbone(str(run / "pretrain-words" / "model"), variant=variant, lora=False).save(
            run / variant / "model"
        )
    for name in ("demo-livr", "demo-latents-only", "demo-sft"):  # what shipped before: LoRA adapters
        shutil.copytree(tiny_paths["livr" if name == "demo-livr" else "sft"], assets / name)
    monkeypatch.setattr(R, "ASSETS_DIR", assets)
    R.install_demo_models(run)
    assert (assets / "demo-base" / "model.safetensors").read_bytes() == (
        run / "pretrain-words" / "model" / "model.safetensors"
    ).read_bytes()
    for name, variant in (("demo-livr", "livr"), ("demo-latents-only", "latents_only"), ("demo-sft", "sft")):
        assert not (assets / name / "adapter_model.safetensors").exists()  # the old adapter is gone, not mixed in
        cfg = json.loads((assets / name / "livr_config.json").read_text())
        assert (cfg["backbone"], cfg["finetune"], cfg["variant"]) == ("demo-base", "full", variant)
        assert load_model(str(assets / name)).config.variant == variant


def test_cli_train_takes_the_data_seed_apart_from_the_seed(tmp_path, tiny_paths):
    from livr_viz.cli import main

    argv = _train_args(tiny_paths["base"], tmp_path, "--seed", "5", "--data-seed", "3", variant="sft", tasks="counting")
    assert main(argv) == 0
    cfg = json.loads((tmp_path / "train_config.json").read_text())
    assert (cfg["seed"], cfg["data_seed"]) == (5, 3)


@pytest.mark.slow
def test_cli_train_takes_lora_rank_training_questions_and_task_balance(tmp_path, tiny_paths, capsys):
    from livr_viz.cli import main

    base, extra = tiny_paths["base"], ("--lora-r", "4", "--n-train-per-task", "20", "--task-balance", "grad_norm")
    assert main(_train_args(base, tmp_path, *extra, variant="latents_only", tasks="counting", steps=2)) == 0
    cfg = json.loads((tmp_path / "train_config.json").read_text())
    assert (cfg["lora_r"], cfg["lora_alpha"], cfg["n_train_per_task"]) == (4, 8, 20)  # alpha follows the rank
    assert cfg["task_balance"] == "grad_norm"
    adapter = json.loads((tmp_path / "model" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"]) == (4, 8)
    shapes = {
        tuple(t.shape) for n, t in load_file(tmp_path / "model" / "adapter_model.safetensors").items() if "lora_A" in n
    }
    assert shapes and all(s[0] == 4 for s in shapes)
    assert main(["train", "--variant", "sft", "--preset", "quick", "--lora-r", "0", "--out", str(tmp_path / "x")]) == 2
    assert "lora_r must be >= 1" in capsys.readouterr().err
    assert main(_train_args(base, tmp_path / "full", "--finetune", "full", tasks="counting", steps=2)) == 0
    cfg = json.loads((tmp_path / "full" / "train_config.json").read_text())
    assert cfg["full_finetune"] and cfg["lr"] == 3e-4  # the full fine-tune preset's rate
    saved = json.loads((tmp_path / "full" / "model" / "livr_config.json").read_text())
    assert saved["finetune"] == "full" and (tmp_path / "full" / "model" / "model" / "model.safetensors").is_file()


def test_reproduce_rejects_bad_fine_tune_settings_before_any_work(tmp_path):
    from tools.reproduce import reproduce

    with pytest.raises(LIVRError, match="grad_accum"):
        reproduce(tmp_path / "run", preset="quick", tasks="counting", grad_accum=0, log=lambda *a: None)
    with pytest.raises(LIVRError, match="finetune must be one of lora, full"):
        reproduce(tmp_path / "run", preset="quick", tasks="counting", finetune="qlora", log=lambda *a: None)
    with pytest.raises(LIVRError, match="stage1_fraction must be in"):
        reproduce(tmp_path / "run", preset="quick", tasks="counting", stage1_fraction=1.5, log=lambda *a: None)
    with pytest.raises(LIVRError, match="leaves no step of Stage 2 fully open"):
        reproduce(tmp_path / "run", preset="quick", tasks="counting", stage2_open_steps=10**6, log=lambda *a: None)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_task_balance_gives_one_task_per_micro_batch_and_equal_gradient_norms():
    from livr_viz.training.trainer import TrainConfig, Trainer, build_model_for_training

    cfg = preset_config(
        "quick", tasks="counting,art_style", variant="sft", grad_accum=2, task_balance="grad_norm", max_grad_norm=1e9
    )
    # the bundled backbone: on trained weights the two tasks' gradient norms differ (below), on random ones they do not
    lm = build_model_for_training("demo-base", cfg)
    trainer = Trainer(lm, cfg, "unused", progress=False)
    tasks = [
        [trainer.train_set[i].task for i in trainer._micro_batch_indices(step, micro)]
        for step in range(3)
        for micro in range(2)
    ]
    assert [set(t) for t in tasks] == [{"counting"}, {"art_style"}] * 3  # every step sees each task once
    assert trainer._micro_batch_indices(1, 0) != trainer._micro_batch_indices(0, 0)  # and new questions each turn

    lm.model.eval()  # no dropout: the two gradients below are the ones the step combines
    batches = [trainer._micro_batch(0, micro) for micro in range(2)]
    expected_parts = []
    for batch in batches:
        (lm.loss(batch, "full") / 2).backward()
        expected_parts.append([p.grad.clone() for p in trainer.params])
        trainer.optimizer.zero_grad(set_to_none=True)
    norms = [float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in part]))) for part in expected_parts]
    assert max(norms) > 3 * min(norms)  # counting's gradient is much larger than art style's here
    seen = []
    trainer.optimizer.step = lambda: seen.append([p.grad.clone() for p in trainer.params])
    trainer.train_step(batches, "full")
    scale = sum(norms) / 2 / 2
    for got, g1, g2 in zip(seen[0], *expected_parts):
        assert torch.allclose(got, (g1 / norms[0] + g2 / norms[1]) * scale, atol=1e-6, rtol=1e-4)
    with pytest.raises(LIVRError, match="task_balance"):
        TrainConfig(task_balance="loss")
    with pytest.raises(LIVRError, match="task_balance"):
        TrainConfig(variant="sft", tasks="perception", task_balance="grad_norm")


def test_task_weights_give_each_task_its_share_from_its_own_question_order():
    from livr_viz.training.trainer import weighted_indices, weighted_schedule

    weights = [4, 1, 1, 2]  # 8 slots a period
    schedule = weighted_schedule(weights)
    assert sorted(schedule) == [0, 0, 0, 0, 1, 2, 3, 3]
    assert schedule == [0, 3, 0, 1, 2, 0, 3, 0]  # spread over the period, not in runs
    stream = weighted_indices(weights, 50, 3, 0, 8 * 50)  # 50 periods: every task's questions exactly w times over
    for task, w in enumerate(weights):
        questions = [i // 4 for i in stream if i % 4 == task]
        assert len(questions) == 50 * w
        assert all(sorted(questions[k * 50 : (k + 1) * 50]) == list(range(50)) for k in range(w))  # epochs of its order
    # a pure function of the slot: any window equals the same slots of the whole stream (exact resume)
    assert weighted_indices(weights, 50, 3, 37, 29) == stream[37:66]
    assert weighted_indices(weights, 50, 4, 0, 64) != stream[:64]  # the data seed draws other orders


def test_stage1_focus_blocks_fill_their_share_from_the_task_then_the_plain_mix_takes_over():
    """``stage1_focus``: block k of Stage 1 gives its task ``share`` of every micro-batch, drawn from that task's own
    seeded order (each block a fresh run through it), the rest from the plain mix's slots; a pure function of the
    step; after the last block (and in Stage 2) the batches are the plain mix's."""
    from livr_viz.training.trainer import focus_indices

    cfg = TrainConfig(
        variant="livr", tasks="all", steps=100, batch_size=8, stage1_focus="jigsaw,art_style", stage1_focus_steps=10
    )
    assert cfg.stage1_steps == 40 and cfg.focus_tasks == ["jigsaw", "art_style"]
    assert [cfg.focus_at(s) for s in (0, 9, 10, 19, 20, 39, 40)] == [(0, "jigsaw")] * 2 + [(1, "art_style")] * 2 + [
        None
    ] * 3
    n_tasks, n = 9, 50
    batch = focus_indices(4, n_tasks, n, 0, turn=3, mix_start=24, count=8, share=0.5)
    assert [i % n_tasks for i in batch[:4]] == [4] * 4  # the focus task's items first
    assert batch[4:] == sample_indices(n * n_tasks, 0, 24, 4)  # then the plain mix's own slots
    own = [focus_indices(4, n_tasks, n, 0, turn, 0, 8, 0.5)[:4] for turn in range(n // 4 + 1)]
    seen = [i // n_tasks for part in own for i in part]
    assert sorted(seen[:n]) == list(range(n))  # one pass through the task's questions before any repeats
    assert focus_indices(4, n_tasks, n, 0, 3, 24, 8, 0.5) == batch  # the same step draws the same batch
    assert len(focus_indices(4, n_tasks, n, 0, 0, 0, 8, 1.0)) == 8  # share 1: the task alone
    bad = dict(variant="livr", tasks="counting,jigsaw", steps=100, stage1_focus_steps=10)
    for settings, message in (
        (dict(bad, stage1_focus="art_style"), "not among this fine-tune's tasks"),
        (dict(bad, stage1_focus="jigsaw,jigsaw"), "twice"),
        (dict(bad, stage1_focus="jigsaw,counting", stage1_focus_steps=21), "do not fit in Stage 1"),
        (dict(bad, stage1_focus="jigsaw", stage1_focus_steps=0), "needs both"),
        (dict(bad, stage1_focus="", stage1_focus_steps=10), "needs both"),
        (dict(bad, stage1_focus="jigsaw", stage1_focus_share=0.0), "stage1_focus_share"),
        (dict(bad, stage1_focus="jigsaw", stage1_focus_share=0.01, batch_size=8), "no item"),
        (dict(bad, stage1_focus="jigsaw", task_weights={"jigsaw": 2}), "both set the mix"),
        (dict(bad, stage1_focus="jigsaw", variant="sft"), "variant sft has no Stage 1"),
    ):
        with pytest.raises(LIVRError, match=message):
            TrainConfig(**settings)


@pytest.mark.slow
def test_stage1_focus_reaches_the_trainer_and_logs_its_task(tmp_path, tiny_paths):
    from collections import Counter

    from livr_viz.cli import main

    cfg = preset_config(
        "quick", tasks="counting,art_style,jigsaw", variant="livr", stage1_focus="art_style", stage1_focus_steps=2
    )
    trainer = Trainer(build_model_for_training(tiny_paths["base"], cfg), cfg, tmp_path / "t", progress=False)
    tasks = [Counter(trainer.train_set[i].task for i in trainer._micro_batch_indices(s, 0)) for s in (0, 1, 2)]
    assert all(c["art_style"] >= 4 for c in tasks[:2])  # half of every batch, and some of the mix's half
    assert tasks[2]["art_style"] < 8 and sum(tasks[2].values()) == 8
    base = tiny_paths["base"]
    args = ("--stage1-focus", "art_style", "--stage1-focus-steps", "2")
    assert main(_train_args(base, tmp_path / "cli", *args, tasks="counting,art_style", steps=6)) == 0
    saved = json.loads((tmp_path / "cli" / "train_config.json").read_text())
    assert (saved["stage1_focus"], saved["stage1_focus_steps"], saved["stage1_focus_share"]) == ("art_style", 2, 0.5)
    log = [r for r in _log_records(tmp_path / "cli") if "loss" in r]
    assert [r.get("focus") for r in log if r["step"] <= 2] == ["art_style"] * len([r for r in log if r["step"] <= 2])
    assert all("focus" not in r for r in log if r["step"] > 2)
    bad = _train_args(base, tmp_path / "bad", "--stage1-focus", "jigsaw", "--stage1-focus-steps", "2", tasks="counting")
    assert main(bad) == 2 and not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_task_weights_reach_the_trainer_and_are_checked(tmp_path, tiny_paths, capsys):
    from collections import Counter

    from livr_viz.cli import main
    from livr_viz.training.trainer import TrainConfig, Trainer, build_model_for_training, parse_task_weights

    cfg = preset_config("quick", tasks="counting,art_style,jigsaw", variant="sft", task_weights={"art_style": 6})
    trainer = Trainer(build_model_for_training(tiny_paths["base"], cfg), cfg, tmp_path / "t", progress=False)
    tasks = Counter(trainer.train_set[i].task for step in range(3) for i in trainer._micro_batch_indices(step, 0))
    assert tasks == {"art_style": 18, "counting": 3, "jigsaw": 3}  # 3 steps of 8: 6 : 1 : 1

    assert parse_task_weights(" art_style=4, counting=2 ") == {"art_style": 4, "counting": 2}
    for bad in ("art_style", "art_style=", "art_style=x", "=3", "art_style=-1", ","):
        with pytest.raises(LIVRError, match="--task-weights"):
            parse_task_weights(bad)
    with pytest.raises(LIVRError, match="not among this fine-tune's tasks"):
        TrainConfig(tasks="counting,jigsaw", task_weights={"art_style": 2})
    with pytest.raises(LIVRError, match="whole numbers >= 1"):
        TrainConfig(tasks="all", task_weights={"art_style": 0})
    with pytest.raises(LIVRError, match="whole numbers >= 1"):
        TrainConfig(tasks="all", task_weights={"art_style": 1.5})
    with pytest.raises(LIVRError, match="use one"):
        TrainConfig(tasks="all", task_weights={"art_style": 2}, task_balance="grad_norm")
    with pytest.raises(LIVRError, match="perception pretraining"):
        TrainConfig(variant="sft", tasks="perception", task_weights={"colour": 2})

    base = tiny_paths["base"]
    assert main(_train_args(base, tmp_path / "cli", "--task-weights", "jigsaw=3", variant="sft", steps=2)) == 0
    assert json.loads((tmp_path / "cli" / "train_config.json").read_text())["task_weights"] == {"jigsaw": 3}
    assert main(_train_args(base, tmp_path / "s2", "--stage2-lr", "1e-4", tasks="counting", steps=5)) == 0
    stage2 = [
        r["lr"]
        for r in map(json.loads, (tmp_path / "s2" / "log.jsonl").read_text().splitlines())
        if r.get("stage") == "full"
    ]
    assert json.loads((tmp_path / "s2" / "train_config.json").read_text())["stage2_lr"] == 1e-4
    assert stage2 and max(stage2) <= 1e-4  # the quick preset's lr is 2e-3
    bad = _train_args(base, tmp_path / "bad", "--task-weights", "jigsaw", variant="sft", tasks="counting", steps=None)
    assert main(bad) == 2
    assert "task=whole number pairs" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_a_full_parameter_livr_fine_tune_trains_everything_and_reloads_exactly(tmp_path, tiny_paths):
    """``full_finetune`` on the task suite: every variant may train every parameter (tower, projector, language
    model, all embedding rows); the run saves a LIVR checkpoint with its whole model that loads back to the same
    logits under both masks, and a resumed run ends with the same weights as an uninterrupted one."""
    from livr_viz.core.model import LIVRModel
    from livr_viz.data.dataset import SyntheticTaskDataset

    schedule = dict(steps=4, eval_every=0, checkpoint_every=2, log_every=1, n_val_per_task=2)
    cfg = preset_config("quick", variant="livr", tasks="counting,art_style", full_finetune=True, **schedule)
    lm = build_model_for_training(tiny_paths["base"], cfg)
    assert lm.config.finetune == "full" and all(p.requires_grad for p in lm.model.parameters())
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    Trainer(lm, cfg, tmp_path / "run", progress=False).run()
    changed = {n for n, p in lm.model.named_parameters() if not torch.equal(p, before[n])}
    assert any("vision_tower" in n for n in changed) and any("language_model" in n for n in changed)
    saved = tmp_path / "run" / "model"
    assert (saved / "model" / "config.json").is_file() and not (saved / "adapter_model.safetensors").exists()
    again = LIVRModel.load(saved)
    assert again.config.finetune == "full" and again.latent_token_ids == lm.latent_token_ids
    items = list(SyntheticTaskDataset("counting", "val", 2, 0))
    with torch.no_grad():
        for stage in ("full", "bottleneck"):
            a = lm.forward(lm.build_inputs([x.image for x in items], [x.prompt for x in items]), stage).logits
            b = again.forward(again.build_inputs([x.image for x in items], [x.prompt for x in items]), stage).logits
            assert torch.equal(a, b), stage
    # killed after step 3 (checkpoint at step 2), then resumed: the same final weights as the uninterrupted run
    calls, step = {"n": 0}, Trainer.train_step

    def dies_at_step_three(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return step(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "train_step", dies_at_step_three)
        with pytest.raises(KeyboardInterrupt):
            Trainer(build_model_for_training(tiny_paths["base"], cfg), cfg, tmp_path / "killed", progress=False).run()
    Trainer(build_model_for_training(tiny_paths["base"], cfg), cfg, tmp_path / "killed", progress=False).run(
        resume=True
    )
    a, b = _final_weights(tmp_path / "run"), _final_weights(tmp_path / "killed")
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)
    # a full-parameter checkpoint without its model is a clear error
    shutil.rmtree(saved / "model")
    with pytest.raises(LIVRError, match="needs its model"):
        LIVRModel.load(saved)
    with pytest.raises(LIVRError, match="perception"):
        preset_config("quick", pretrain=True, variant="livr")


def test_the_full_preset_is_the_demo_full_fine_tune_made_longer():
    """`--finetune full --preset full`: the issue's longer resumable run, the demo full fine-tune's settings at 5,000
    steps; LoRA has no such preset and says which it has."""
    long, demo = preset_config("full", finetune="full"), preset_config("demo", finetune="full")
    assert (long.steps, long.eval_every, long.full_finetune) == (5000, 500, True)
    assert (long.lr, long.batch_size, long.n_train_per_task, long.weight_decay) == (
        demo.lr,
        demo.batch_size,
        demo.n_train_per_task,
        demo.weight_decay,
    )
    assert preset_config("full", finetune="full", variant="sft", steps=7).steps == 7
    with pytest.raises(LIVRError, match="quick, demo, paper"):
        preset_config("full")


def test_evaluate_run_reuses_stored_predictions_of_the_same_questions_only(tmp_path):
    """A variant OUT holds no model for is taken from predictions stored for the same test questions (the paired
    comparisons then pair them); predictions of other questions are refused, and with neither it says what is
    missing."""
    from livr_viz.data.dataset import SyntheticTaskDataset
    from tools import reproduce as rep

    test = SyntheticTaskDataset("counting,jigsaw", "test", 3, 2026, answer_format="word")
    items = [test[i] for i in range(len(test))]

    def rows(correct):
        return [
            {
                "id": it.id,
                "task": it.task,
                "answer": it.answer,
                "prediction": it.answer if c else "?",
                "correct": c,
                "probs": [1.0],
            }
            for it, c in zip(items, correct)
        ]

    right, wrong = rows([True] * len(items)), rows([False] * len(items))
    stored = {
        "predictions": {
            "sft": {"standard": wrong},
            "latents_only": {"standard": wrong},
            "livr": {"standard": right, "bottleneck": right},
        },
        "answer_latent_attention": {"livr": 0.25},
    }
    res = rep.evaluate_run(tmp_path, test, log=lambda *a: None, stored=stored)
    assert res["paired"]["livr_vs_sft"]["average"]["delta"] == pytest.approx(1.0)
    assert res["eval"]["livr"]["bottleneck"]["average"]["accuracy"] == pytest.approx(1.0)
    assert res["answer_latent_attention"] == {"livr": 0.25}
    assert json.loads((tmp_path / "predictions.json").read_text())["sft"]["standard"] == wrong
    stored["predictions"]["sft"]["standard"] = wrong[::-1]
    with pytest.raises(LIVRError, match="other test questions"):
        rep.evaluate_run(tmp_path, test, log=lambda *a: None, stored=stored)
    del stored["predictions"]["sft"]
    with pytest.raises(LIVRError, match="no stored predictions for sft"):
        rep.evaluate_run(tmp_path, test, log=lambda *a: None, stored=stored)


def test_half_backbone_is_the_float16_rounding_and_a_fine_tune_keeps_its_backbone(tmp_path, tiny_paths):
    """``--half-backbone``: the copy holds every float weight rounded to float16, loads as the float32 model of those
    values, and a fine-tune started from one backbone is refused from the other."""
    import torch
    from safetensors.torch import load_file

    import tools.reproduce as R
    from livr_viz.core.model import load_backbone

    src = Path(tiny_paths["base"])
    half = R.half_precision_copy(src, tmp_path / "model-float16")
    assert R.half_precision_copy(src, tmp_path / "model-float16") == half  # written once, then reused
    full, rounded = load_file(str(src / "model.safetensors")), load_file(str(half / "model.safetensors"))
    assert set(full) == set(rounded)
    for name, tensor in full.items():
        assert rounded[name].dtype == (torch.float16 if tensor.is_floating_point() else tensor.dtype)
    assert (half / "model.safetensors").stat().st_size < 0.6 * (src / "model.safetensors").stat().st_size
    (model, _), (reference, _) = load_backbone(str(half)), load_backbone(str(src))
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        assert p.dtype == torch.float32 and torch.equal(p.detach(), q.detach().half().float()), name
    R._check_phase_backbone(tmp_path / "livr", str(half))
    R._check_phase_backbone(tmp_path / "livr", str(half))  # the same backbone again: fine
    with pytest.raises(LIVRError, match="was fine-tuned from .*model-float16, not"):
        R._check_phase_backbone(tmp_path / "livr", str(src))


def test_targets_name_each_missing_task_with_the_reader_alone_ceiling():
    """The spatial-reader issue's targets: the best variant's count of tasks at chance + 20, and for each task it
    misses, the reader alone on that task (its measured ceiling) or "not measured alone"; the paired verdicts."""
    import tools.reproduce as R

    tasks = ["jigsaw", "counting", "art_style"]
    chance = {"jigsaw": 0.5, "counting": 0.25, "art_style": 0.5}

    def table(acc: dict) -> dict:
        rows = {t: {"accuracy": acc[t], "chance": chance[t]} for t in tasks}
        return {"tasks": rows, "average": {"accuracy": sum(acc.values()) / 3, "chance": 5 / 12}}

    def pair(delta: float, low: float, high: float, per_task: float) -> dict:
        return {
            "average": {"delta": delta, "ci95": [low, high], "mcnemar_p": 0.01},
            "tasks": {t: {"delta": per_task} for t in tasks},
        }

    ev = {
        "sft": {"standard": table({"jigsaw": 0.52, "counting": 0.60, "art_style": 0.80})},
        "latents_only": {"standard": table({"jigsaw": 0.5, "counting": 0.3, "art_style": 0.6})},
        "livr": {"standard": table({"jigsaw": 0.5, "counting": 0.5, "art_style": 0.7})},
        "livr_stage1_only": {
            "standard": table({"jigsaw": 0.5, "counting": 0.3, "art_style": 0.5}),
            "bottleneck": table({"jigsaw": 0.5, "counting": 0.5, "art_style": 0.7}),
        },
    }
    paired = {
        "livr_vs_sft": pair(-0.04, -0.07, -0.01, -0.04),
        "livr_vs_latents_only_bottleneck": pair(0.12, 0.05, 0.2, 0.1),
        "livr_standard_vs_blind": pair(0.03, 0.01, 0.05, 0.03),
    }
    text = "\n".join(R.target_lines({"eval": ev, "tasks": tasks, "paired": paired}))
    assert "The best variant (sft)" in text and "**missed** (2 of 3; below: jigsaw)" in text
    jigsaw = R.reader_alone("jigsaw")
    assert jigsaw is not None and f"| jigsaw | 50.0 | 52.0 | {jigsaw['test']:.1f} [" in text
    # 12 points with the interval above 0, but ahead on 3 tasks, fewer than the 5 asked
    assert "at least 5 tasks: **missed** (LIVR − latents-only +12.0 [+5.0, +20.0], p 0.010; above on 3 of 3)" in text
    assert "Stage-1 checkpoint under the bottleneck mask ≥ chance + 15 points: **met** (56.7 vs chance 41.7" in text
    assert "costs at least 5 points (interval above 0): **missed**" in text
    assert "**missed**: LIVR is significantly below SFT" in text
    assert R.reader_alone("counting") is None  # never measured alone: the table says so


def test_reproduce_says_when_stage_2_peaks_above_the_fine_tunes(tmp_path, monkeypatch):
    """`--stage2-lr 6e-4` is a third of the LoRA peak but twice the full fine-tunes' (the spatial trio's mistake):
    reproduce says so before any work, and refuses nothing."""
    import tools.reproduce as R

    class Stop(Exception):
        pass

    def stop_at_the_first_phase(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(R, "save_demo_backbone", stop_at_the_first_phase)
    for preset, finetune, warned in (("full", "full", True), ("demo", "lora", False)):  # peaks 3e-4 / 2e-3
        lines: list[str] = []
        with pytest.raises(Stop):
            R.reproduce(tmp_path / preset, preset=preset, finetune=finetune, stage2_lr=6e-4, log=lines.append)
        said = any("Stage 2 peaks at 0.0006, above the fine-tunes' peak 0.0003" in line for line in lines)
        assert said == warned, (preset, lines)

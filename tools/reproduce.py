"""``python -m tools.reproduce``: pretrain the demo backbone, fine-tune the three variants, evaluate, write RESULTS.md.

A repository tool, run from the root of a clone (``pip install -e .``): it imports the installed package and, with
``--install``, writes the clone's ``assets/`` and ``RESULTS.md``; the package never imports it.

Every phase writes into its own folder and is skipped when its final model exists, so a killed run continues
where it stopped (a phase killed mid-way resumes from its last checkpoint).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors import safe_open

from livr_viz.core.config import FINETUNES, TASK_BALANCES, TEST_SEED
from livr_viz.core.config import VARIANTS as MODEL_VARIANTS
from livr_viz.core.errors import LIVRError
from livr_viz.core.fsutil import fresh_tmp_dir, replace_dir
from livr_viz.core.model import load_model
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.data.perception import make_perception_sample
from livr_viz.demo.backbone import TOWERS, DemoBackboneConfig, save_demo_backbone
from livr_viz.demo.bundled import DEMO_SETS, SET_BACKBONES
from livr_viz.methods.latent_use import latent_use_predictions, paired_comparison
from livr_viz.training.evaluate import summarize
from livr_viz.training.trainer import Trainer, build_model_for_training, check_run_settings, preset_config
from livr_viz.training.vision_pretrain import VISION_PRESETS, VisionPretrainConfig, pretrain_vision

REPO = Path(__file__).resolve().parents[1]  # the clone this tool belongs to
ASSETS_DIR = REPO / "assets"  # where --install ships a run (the folder the wheel carries as livr_viz._assets)
VARIANTS = MODEL_VARIANTS[::-1]  # the training order: sft, latents_only, livr

PHASES = {
    "vision": "vision",
    "pretrain_colour": "pretrain-colour",
    "pretrain": "pretrain",
    "pretrain_words": "pretrain-words",
    **{v: v for v in VARIANTS},
}  # timing key -> phase folder
WARM_START_STEPS = {"quick": 4, "demo": 150}  # colour-only perception steps before the full curriculum
# stage 1c: the word-answer curriculum (the tasks' read-outs in their own layouts, perception:words)
WORDS_STEPS = {"quick": 4, "demo": 1500}
# reproduce's presets -> the backbone phases' preset; "full" is the issue's longer run (FULL_FINETUNE_PRESETS["full"],
# 5,000 steps a variant, about 76 min each alone on 2 cores) on the demo backbone, with --finetune full only
REPRODUCE_PRESETS = {"quick": "quick", "demo": "demo", "full": "demo"}
# The paper's reported LIVR − SFT deltas (points) on Qwen2.5-VL-3B, single task (LIVR.md), for reference.
PAPER_DELTAS = {"average": 6.24, "jigsaw": 12.00, "functional_correspondence": 13.02}


def _phase_done(path: Path) -> bool:
    return (path / "model").is_dir()


def run_phase(out: Path, train_fn, log, cfg=None) -> float:
    """Run ``train_fn()`` unless ``out/model`` exists; its wall time is kept in ``out/time.json``.

    With ``cfg`` (a TrainConfig), a finished phase trained with other settings is an error, not a silent reuse."""
    if _phase_done(out) and cfg is not None:
        check_run_settings(out, cfg)
    if _phase_done(out):
        log(f"{out.name}: already trained, skipping")
        return 0.0
    resumed = (out / "checkpoint").is_dir()
    t0 = time.perf_counter()
    train_fn()
    seconds = time.perf_counter() - t0
    record: dict = {"seconds": seconds}
    if resumed:  # the trainer's checkpoint holds the time of every part (None when an older part did not record it)
        state = out / "checkpoint" / "trainer_state.json"
        total = json.loads(state.read_text()).get("elapsed_s") if state.is_file() else None
        record = {"seconds": total, "resumed": True} if total is not None else {"last_part_seconds": seconds}
    (out / "time.json").write_text(json.dumps(record))
    return seconds


def phase_seconds(out: Path) -> float | None:
    """Training wall time of the phase in ``out``, over every resumed part (None if unknown)."""
    try:
        return float(json.loads((out / "time.json").read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        return None


HALF_BACKBONE = "model-float16"  # the float16 rounding of the backbone (--half-backbone), beside its model/


def half_precision_copy(src: Path, dst: Path) -> Path:
    """``dst``: the saved model in ``src`` with its floating-point weights rounded to float16 (every other file
    copied unchanged); written once, atomically, and reused. Loaded with ``dtype=float32`` (as livr-viz loads every
    model) it is the float32 model of those rounded values."""
    import torch
    from safetensors.torch import load_file, save_file

    if (dst / "config.json").is_file():
        return dst
    tmp = fresh_tmp_dir(dst)
    shutil.copytree(src, tmp, dirs_exist_ok=True)
    for file in sorted(src.glob("*.safetensors")):
        tensors = load_file(str(file))
        half = {k: t.to(torch.float16) if t.is_floating_point() else t for k, t in tensors.items()}
        too_big = [k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(half[k]).all()]
        if too_big:
            raise LIVRError(f"{file}: {too_big[0]} does not fit float16; keep the backbone in float32")
        save_file(half, str(tmp / file.name), metadata={"format": "pt"})
    replace_dir(tmp, dst)
    return dst


def _check_phase_backbone(out: Path, backbone: str) -> None:
    """A fine-tune started from one backbone is never continued or reused from another (the float32 backbone or
    its float16 rounding): ``out/backbone.json`` records the first, a different one is an error."""
    record = out / "backbone.json"
    if record.is_file():
        before = json.loads(record.read_text())["backbone"]
        if before != backbone:
            raise LIVRError(
                f"{out} was fine-tuned from {before}, not {backbone} (--half-backbone differs?); delete that folder "
                "to retrain it, or use a fresh --out"
            )
    elif not (out / "model").is_dir() and not (out / "checkpoint").is_dir():
        out.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"backbone": backbone}) + "\n")


def _trainer_phase(backbone: str, cfg, out: Path, branch_from: Path | None = None):
    """Train ``cfg`` from ``backbone`` into ``out``: resumed from its checkpoint, else branched from another LIVR
    run's end of Stage 1 (``branch_from``), else from scratch."""

    def run():
        resume = (out / "checkpoint").is_dir()
        Trainer(build_model_for_training(backbone, cfg), cfg, out).run(
            resume=resume, branch_from=None if resume else branch_from
        )

    return run


def reproduce(
    out: str | Path,
    preset: str = "demo",
    tasks: str = "all",
    n_test: int = 200,
    install: bool = False,
    pretrain_steps: int | None = None,
    steps: int | None = None,
    seed: int | None = None,
    grad_accum: int | None = None,
    task_balance: str | None = None,
    task_weights: dict | None = None,
    stage2_lr: float | None = None,
    stage1_body_lr_scale: float | None = None,
    stage2_open_steps: int | None = None,
    stage1_focus: str | None = None,
    stage1_focus_steps: int | None = None,
    stage1_focus_share: float | None = None,
    stage1_fraction: float | None = None,
    vision_steps: int | None = None,
    vision_markers: bool = False,
    tower: str = "vit",
    vision_compare: bool = False,
    freeze_vision_tower: bool = False,
    finetune: str = "lora",
    variants: list[str] | None = None,
    half_backbone: bool = False,
    livr_branch_from: str | Path | None = None,
    log=print,
) -> dict:
    """Pretrain the demo backbone (skipped once ``out/pretrain/model`` exists), fine-tune the three variants,
    evaluate them on a fresh test seed and write RESULTS.md. ``seed`` replicates the fine-tunes: it seeds LoRA /
    latent init and dropout *and* draws the fine-tune's training data and order (default: the presets' 42 / 0).
    ``grad_accum`` multiplies the fine-tunes' batch (micro-batches per optimizer step; default: the preset's);
    ``task_balance="grad_norm"`` gives every task of a fine-tune the same gradient norm (see ``TrainConfig``);
    ``task_weights`` ({task: w}) gives a task w shares of every fine-tune batch (others 1); ``stage2_lr`` sets the
    LIVR fine-tune's Stage-2 peak learning rate (default: the preset's lr); ``stage1_body_lr_scale`` its Stage-1 rate
    for every parameter but the latent rows, as a fraction of the rate (default 1; see ``TrainConfig``);
    ``stage2_open_steps`` opens its Stage 2's text->image attention over that many steps (default 0: at once);
    ``stage1_focus`` / ``stage1_focus_steps`` / ``stage1_focus_share`` open its Stage 1 with one focus block per named
    task (see ``TrainConfig``); ``stage1_fraction`` its share of steps in Stage 1 (default 0.4, the paper's "4/6").
    ``vision_steps`` sets stage 0's length (default: the preset's; the tower's shape head needs ~1,200, measured);
    ``vision_markers`` gives stage 0 the word format's images and the every-colour head (``--markers``).
    ``tower`` picks the fresh backbone's vision tower ("vit", the shipped one, or "spatial", the spatial reader);
    ``vision_compare`` gives stage 0 the comparison targets of the panel and marker tasks (``CompareHeads``).
    ``freeze_vision_tower`` keeps the tower as stage 0 left it in the pretraining phases after it (LLaVA's recipe;
    the shipped backbone trained it, docs/experiments/frozen-tower/ measures the frozen one).
    ``finetune="full"`` trains every parameter in the three fine-tunes (``FULL_FINETUNE_PRESETS``) instead of LoRA.
    ``install`` ships the run as the bundled ``demo`` set (backbone, the three fine-tunes, RESULTS.md).
    ``variants`` trains only those fine-tunes (after the backbone) and returns before the evaluation, so two processes
    can train the trio side by side on one OUT; the full command afterwards skips what is trained and evaluates.
    ``half_backbone`` rounds the finished backbone's weights to float16 (``OUT/pretrain-words/model-float16``) and
    fine-tunes the trio from that rounding, so the bundled demo-base can ship at half the size and still be, bit for
    bit, what the trio started from (the models load in float32 either way).
    ``livr_branch_from`` (a LIVR run folder with ``stage1_checkpoint/``, e.g. one trained with another
    ``stage2_lr``) gives the LIVR fine-tune that run's Stage 1 and trains only its Stage 2; the settings must agree
    except for Stage 2's (``stage2_lr``, ``stage2_open_steps``), and the backbone must be the same."""
    if preset not in REPRODUCE_PRESETS:
        raise LIVRError(f"reproduce presets: {', '.join(REPRODUCE_PRESETS)}; got {preset!r}")
    if preset == "full" and finetune != "full":
        raise LIVRError("--preset full is the longer run of the full fine-tunes: use it with --finetune full")
    tune_preset, preset = preset, REPRODUCE_PRESETS[preset]  # the fine-tunes' preset, the backbone phases' preset
    # every phase's settings are built (and checked) before any work, not after half an hour of pretraining
    # stage 0: the vision tower learns dense patch labels (colour, layout, position, shape)
    steps0 = {} if vision_steps is None else {"steps": vision_steps}
    vision_cfg = VisionPretrainConfig(
        **(VISION_PRESETS[preset] | steps0 | {"markers": vision_markers, "compare": vision_compare})
    )
    backbone_cfg = DemoBackboneConfig(seed=0, tower=tower)  # checked before any work
    tower = {"freeze_vision_tower": freeze_vision_tower}
    # stage 1a: one easy question (colour) teaches the language model to look at the image tokens at all
    # (a third of it warmup: at full learning rate from the first steps it stalls at 0.38, measured)
    warm_cfg = preset_config(
        preset, pretrain=True, tasks="perception:colour", steps=WARM_START_STEPS[preset], warmup_fraction=1 / 3, **tower
    )
    # stage 1b: the whole perception curriculum
    pre_cfg = preset_config(preset, pretrain=True, steps=pretrain_steps, **tower)
    # stage 1c: the word-format read-outs of the nine tasks (which coloured marker / which side), full parameters
    words_cfg = preset_config(preset, pretrain=True, tasks="perception:words", steps=WORDS_STEPS[preset], **tower)
    configs = {
        variant: preset_config(
            tune_preset,
            finetune=finetune,
            variant=variant,
            tasks=tasks,
            steps=steps,
            seed=seed,
            data_seed=seed,
            grad_accum=grad_accum,
            task_balance=task_balance,
            task_weights=task_weights,
            stage2_lr=stage2_lr if variant == "livr" else None,
            stage1_body_lr_scale=stage1_body_lr_scale if variant == "livr" else None,
            stage2_open_steps=stage2_open_steps if variant == "livr" else None,
            stage1_focus=stage1_focus if variant == "livr" else None,
            stage1_focus_steps=stage1_focus_steps if variant == "livr" else None,
            stage1_focus_share=stage1_focus_share if variant == "livr" else None,
            stage1_fraction=stage1_fraction if variant == "livr" else None,
        )
        for variant in VARIANTS
    }
    livr = configs["livr"]
    if livr.stage2_lr is not None and livr.stage2_lr > livr.lr:  # the spatial trio's mistake (docs/experiments/)
        log(
            f"note: LIVR's Stage 2 peaks at {livr.stage2_lr:g}, above the fine-tunes' peak {livr.lr:g} "
            f"(--finetune {finetune}, --preset {tune_preset}); a Stage-2 rate that keeps Stage 1's route is at or "
            "below it"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    init = out / "init"
    # the pretraining phases feed only the backbone: once it exists they are skipped, even if their models are gone
    # (a backbone given as OUT/pretrain-words/model, e.g. a copy of the bundled demo-base, skips them all; one
    # given as OUT/pretrain/model still gets the word curriculum)
    backbone_done = _phase_done(out / "pretrain") or _phase_done(out / "pretrain-words")
    if not backbone_done and not (init / "config.json").is_file():  # random init (seed 0), everything starts here
        save_demo_backbone(init, backbone_cfg)
    if backbone_done:
        log("pretrain: backbone already trained, skipping stages 0-1b")
        timings.update(vision=0.0, pretrain_colour=0.0, pretrain=0.0)
    else:
        timings["vision"] = run_phase(
            out / "vision", lambda: pretrain_vision(init, vision_cfg, out / "vision", log=log), log
        )
        timings["pretrain_colour"] = run_phase(
            out / "pretrain-colour",
            _trainer_phase(str(out / "vision" / "model"), warm_cfg, out / "pretrain-colour"),
            log,
        )
        timings["pretrain"] = run_phase(
            out / "pretrain", _trainer_phase(str(out / "pretrain-colour" / "model"), pre_cfg, out / "pretrain"), log
        )
    timings["pretrain_words"] = run_phase(
        out / "pretrain-words",
        _trainer_phase(str((out / "pretrain" / "model").resolve()), words_cfg, out / "pretrain-words"),
        log,
        words_cfg,
    )
    backbone = str((out / "pretrain-words" / "model").resolve())
    if half_backbone:
        backbone = str(half_precision_copy(Path(backbone), out / "pretrain-words" / HALF_BACKBONE))
    branch = None
    if livr_branch_from is not None and (variants is None or "livr" in variants):
        branch = Path(livr_branch_from)
        record = branch / "backbone.json"  # the branch's Stage 1 must have started from this backbone
        before = json.loads(record.read_text())["backbone"] if record.is_file() else None
        if before is not None and before != backbone:
            raise LIVRError(f"--livr-branch-from: {branch} was fine-tuned from {before}, not {backbone}")
        if before is None:
            log(f"note: {branch} does not record its backbone; branching on the word that it is {backbone}")
    for variant, cfg in configs.items():
        if variants is None or variant in variants:
            _check_phase_backbone(out / variant, backbone)
            phase = _trainer_phase(backbone, cfg, out / variant, branch if variant == "livr" else None)
            timings[variant] = run_phase(out / variant, phase, log, cfg)
    if variants is not None:
        done = ", ".join(variants) if variants else "the backbone"
        log(f"trained {done}; run again without --variants to evaluate the trio")
        return {"trained": list(variants), "seconds": timings}

    t_eval = time.perf_counter()
    test = SyntheticTaskDataset(tasks, "test", n_test, TEST_SEED, answer_format=configs["livr"].answer_format)
    results: dict = {
        "preset": tune_preset,
        "finetune": finetune,
        "tasks": test.tasks,
        "n_test_per_task": n_test,
        "test_seed": TEST_SEED,
        "configs": {v: c.to_dict() for v, c in configs.items()},
        "pretrain_config": pre_cfg.to_dict(),
        "warm_start_config": warm_cfg.to_dict(),
        "words_config": words_cfg.to_dict(),
        "vision_config": asdict(vision_cfg),
        "backbone_config": asdict(backbone_cfg),
        "half_backbone": half_backbone,
    }
    results.update(evaluate_run(out, test, log))
    timings["eval"] = time.perf_counter() - t_eval
    timings["total"] = time.perf_counter() - t_start
    results["backbone"] = backbone_size(Path(backbone))
    results["seconds"] = timings  # this invocation (phases already trained count 0)
    results["phase_seconds"] = {name: phase_seconds(out / folder) for name, folder in PHASES.items()}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot_results(results, out / "results.png")
    write_results_md(results, out / "RESULTS.md", out)
    if install:
        install_demo_models(out)
        publish_results(out)
    return results


def evaluate_run(out: Path, test, log=print, stored: dict | None = None) -> dict:
    """Every condition of the paper's "are the latents used?" table for the three variants (and the LIVR Stage-1
    checkpoint under the bottleneck), on the same test questions; per-item predictions go to
    ``out/predictions.json``, and LIVR is compared with SFT and with latents-only pairwise (paired bootstrap and
    McNemar). ``stored``: ``{"predictions": {model: {condition: rows}}, "answer_latent_attention": {model: float}}``
    measured earlier on these same questions, used for a model OUT does not hold (a variant not retrained); a stored
    row set of other questions is refused. Returns ``{"eval": {model: {condition: summary}}, "answer_latent_attention":
    ..., "paired": ...}``."""
    stored = stored or {"predictions": {}, "answer_latent_attention": {}}
    models = {v: out / v / "model" for v in VARIANTS}
    if (out / "livr" / "stage1_model").is_dir():
        models["livr_stage1_only"] = out / "livr" / "stage1_model"
    elif "livr_stage1_only" in stored["predictions"] and not (out / "livr" / "model").is_dir():
        models["livr_stage1_only"] = None
    predictions, evals, attention = {}, {}, {}
    for name, path in models.items():
        if path is not None and path.is_dir():
            log(f"evaluating {name} on {len(test)} test questions")
            lm = load_model(str(path))
            conditions = ("standard", "bottleneck") if name == "livr_stage1_only" else None
            rows = latent_use_predictions(lm, test, conditions, progress=True)
            attention[name] = float(np.mean(rows.pop("answer_latent_attention")))
        elif name in stored["predictions"]:
            rows = stored["predictions"][name]
            ids = [test[i].id for i in range(len(test))]
            if any([r["id"] for r in cond] != ids for cond in rows.values()):
                raise LIVRError(
                    f"the stored predictions of {name} are for other test questions than these "
                    f"({len(ids)} from seed {TEST_SEED}); evaluate its model instead"
                )
            log(f"{name}: stored predictions (no model at {path or out / 'livr' / 'stage1_model'})")
            if name in stored["answer_latent_attention"]:
                attention[name] = stored["answer_latent_attention"][name]
        else:
            raise LIVRError(f"no model at {path} and no stored predictions for {name}")
        predictions[name] = rows
        evals[name] = {condition: summarize(r) for condition, r in rows.items()}
    (out / "predictions.json").write_text(json.dumps(predictions))
    livr, lo = predictions["livr"], predictions["latents_only"]
    paired = {
        "livr_vs_sft": paired_comparison(livr["standard"], predictions["sft"]["standard"]),
        "livr_vs_latents_only": paired_comparison(livr["standard"], lo["standard"]),
    }
    if "bottleneck" in livr and "bottleneck" in lo:  # the paper's §4.6 contrast: who answers through its latents
        paired["livr_vs_latents_only_bottleneck"] = paired_comparison(livr["bottleneck"], lo["bottleneck"])
    if "blind" in livr:  # what LIVR's latents carry: the same model with its latents cut from the image
        paired["livr_standard_vs_blind"] = paired_comparison(livr["standard"], livr["blind"])
    return {"eval": evals, "answer_latent_attention": attention, "paired": paired}


def publish_results(out: Path) -> None:
    """Copy RESULTS.md to the repository root and its plots to docs/ (links rewritten)."""
    root = Path(__file__).resolve().parent.parent
    (root / "docs").mkdir(exist_ok=True)
    text = (out / "RESULTS.md").read_text()
    for name in ("results.png",):
        shutil.copy(out / name, root / "docs" / name)
        text = text.replace(f"]({name})", f"](docs/{name})")
    for variant in VARIANTS:
        if (out / variant / "training.png").is_file():
            shutil.copy(out / variant / "training.png", root / "docs" / f"training-{variant}.png")
    # hand-written parts of the shipped run, kept across re-runs: a short summary under the title, notes at the end
    summary = root / "docs" / "results-summary.md"
    if summary.is_file():
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{summary.read_text().strip()}\n{rest}"
    notes = root / "docs" / "results-notes.md"
    if notes.is_file():
        text = text.rstrip("\n") + "\n\n" + notes.read_text()
    (root / "RESULTS.md").write_text(text)


def _run_backbone(out: Path) -> Path:
    """The backbone the run's trio was fine-tuned from: the float16 rounding when there is one, else the model."""
    half = out / "pretrain-words" / HALF_BACKBONE
    return half if (half / "config.json").is_file() else out / "pretrain-words" / "model"


def _on_bundled_backbone(out: Path) -> bool:
    """The run's backbone is, byte for byte, the bundled one (``demo-base``)."""
    mine = _run_backbone(out) / "model.safetensors"
    bundled = ASSETS_DIR / SET_BACKBONES["demo"] / "model.safetensors"
    return mine.is_file() and bundled.is_file() and mine.read_bytes() == bundled.read_bytes()


def install_demo_models(out: Path) -> None:
    """Copy the run's backbone (its float16 rounding with ``--half-backbone``) into assets/ as ``demo-base`` and its
    three fine-tunes (LoRA adapters, or whole models with ``--finetune full``) under the names of the bundled
    ``demo`` set; each folder is replaced whole."""
    base = SET_BACKBONES["demo"]

    def install(src: Path, dst: Path):
        tmp = fresh_tmp_dir(dst)
        shutil.copytree(src, tmp, dirs_exist_ok=True)
        replace_dir(tmp, dst)

    install(_run_backbone(out), ASSETS_DIR / base)
    for variant, name in zip(MODEL_VARIANTS, DEMO_SETS["demo"]):
        install(out / variant / "model", ASSETS_DIR / name)
        for file, key in (("livr_config.json", "backbone"), ("adapter_config.json", "base_model_name_or_path")):
            path = ASSETS_DIR / name / file  # point at the bundled name, not at the run's absolute path
            if path.is_file():
                cfg = json.loads(path.read_text())
                cfg[key] = base
                path.write_text(json.dumps(cfg, indent=2))


def plot_results(results: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = results["tasks"]
    fig, ax = plt.subplots(figsize=(10, 3.8))
    width = 0.26
    x = np.arange(len(tasks) + 1)
    colours = {"sft": "#8c8c8c", "latents_only": "#4c9be8", "livr": "#e8a33c"}
    for i, variant in enumerate(VARIANTS):
        ev = results["eval"][variant]["standard"]
        acc = [ev["tasks"][t]["accuracy"] for t in tasks] + [ev["average"]["accuracy"]]
        lo = [ev["tasks"][t]["ci95"][0] for t in tasks] + [ev["average"]["accuracy"]]
        hi = [ev["tasks"][t]["ci95"][1] for t in tasks] + [ev["average"]["accuracy"]]
        ax.bar(
            x + (i - 1) * width,
            acc,
            width,
            label=variant,
            color=colours[variant],
            yerr=np.clip([np.subtract(acc, lo), np.subtract(hi, acc)], 0, None),  # rounding at 0 and 1
            capsize=2,
            error_kw={"lw": 0.7},
        )
    chance = [results["eval"]["sft"]["standard"]["tasks"][t]["chance"] for t in tasks]
    chance.append(float(np.mean(chance)))
    ax.scatter(x, chance, marker="_", s=300, color="black", label="chance", zorder=3)
    ax.set_xticks(x, [t.replace("_", "\n") for t in tasks] + ["average"], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def backbone_size(model_dir: Path) -> dict | None:
    """Parameter count and language-model / vision-tower shape of a saved LLaVA backbone (read from its files)."""
    config_path = model_dir / "config.json"
    weights = sorted(model_dir.glob("*.safetensors"))
    if not config_path.is_file() or not weights:
        return None
    config = json.loads(config_path.read_text())
    n = 0
    for file in weights:
        with safe_open(str(file), "pt") as f:
            n += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())  # noqa: SIM118 - safe_open has keys(), not __iter__
    text, vision = config.get("text_config", {}), config.get("vision_config", {})
    return {
        "parameters": n,
        "text_hidden": text.get("hidden_size"),
        "text_layers": text.get("num_hidden_layers"),
        "vision_hidden": vision.get("hidden_size"),
        "vision_layers": vision.get("num_hidden_layers"),
        "image_size": vision.get("image_size"),
        "patch_size": vision.get("patch_size"),
    }


def _batch(cfg: dict) -> str:
    accum = cfg.get("grad_accum", 1)
    text = (
        str(cfg["batch_size"])
        if accum == 1
        else (f"{cfg['batch_size']} × {accum} micro-batches ({cfg['batch_size'] * accum} per step)")
    )
    if cfg.get("task_balance", "none") == "grad_norm":
        text += ", one task per micro-batch, each task's gradient scaled to the same norm (`--task-balance grad_norm`)"
    if cfg.get("task_weights"):
        weights = ", ".join(f"{t} {w}" for t, w in cfg["task_weights"].items())
        text += f", tasks weighted in every batch ({weights}; the others 1; `--task-weights`)"
    return text


def _livr_rates(cfg: dict) -> str:
    notes = [] if cfg.get("stage2_lr") is None else [f"Stage 2 at peak lr {cfg['stage2_lr']}, `--stage2-lr`"]
    scale = cfg.get("stage1_body_lr_scale", 1.0)
    if scale != 1.0:
        notes.append(f"Stage 1 moves all but the latent rows at {scale:g} x the rate, `--stage1-body-lr-scale`")
    if cfg.get("stage1_focus"):
        notes.append(
            f"Stage 1 opens with {cfg['stage1_focus_steps']}-step focus blocks "
            f"({cfg['stage1_focus'].replace(',', ', ')}; {cfg.get('stage1_focus_share', 0.5):g} of every batch), "
            "`--stage1-focus`"
        )
    if cfg.get("stage2_open_steps"):
        notes.append(
            f"Stage 2 opens the text rows' view of the image over {cfg['stage2_open_steps']} steps, "
            "`--stage2-open-steps`"
        )
    return f" ({'; '.join(notes)})" if notes else ""


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _records(log_path: Path) -> list[dict]:
    if not log_path.is_file():
        return []
    return [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]


def _evals(log_path: Path) -> list[dict]:
    return [r for r in _records(log_path) if "eval" in r]


def backbone_section(out: Path) -> list[str]:
    """What the pretraining phases taught the backbone, from their logs (validation split, per kind)."""
    lines = ["", "## The backbone: what pretraining taught it", ""]
    vision = _records(out / "vision" / "log.jsonl")
    if vision:  # mean over the last four logged batches (the shape accuracy of one batch rests on few patches)
        tail = vision[-4:]
        last = {k: sum(r[k] for r in tail if k in r) / max(1, sum(k in r for r in tail)) for k in tail[-1]}
        lines.append(
            f"- Vision tower, last {len(tail)} logged training batches: patch colour class "
            f"{_pct(last['acc_colour'])} %, patch position {_pct(last['acc_position'])} %"
            + (f", shape under the patch {_pct(last['acc_shape'])} %" if "acc_shape" in last else "")
            + f"; luminance-grid MSE loss {last['loss_luminance'] / 10:.4f}."
        )
    warm = _evals(out / "pretrain-colour" / "log.jsonl")
    if warm:
        lines.append(
            f"- Colour warm start: validation colour accuracy {_pct(warm[-1]['eval_average'])} % "
            f"after {warm[-1]['step']} steps."
        )
    evals = _evals(out / "pretrain" / "log.jsonl")
    if evals:
        lines += _curriculum_table(evals, "Perception curriculum")
    words = _evals(out / "pretrain-words" / "log.jsonl")
    if not (vision or warm or evals):  # the backbone was given, not pretrained in this run
        given = "pretrain" if words else "pretrain-words"
        which = (
            "the bundled `demo-base`, whose pretraining the repository's RESULTS.md describes"
            if _on_bundled_backbone(out) and not words
            else "not this run's: no pretraining logs"
        )
        lines.append(f"The backbone in `{out.name}/{given}/model` was given, not pretrained here: {which}.")
    if words:
        lines += _curriculum_table(words, "Word curriculum (the tasks' read-outs in their own layouts)")
    if _run_backbone(out).name == HALF_BACKBONE:
        lines += [
            "",
            "The three fine-tunes start from the backbone's weights rounded to float16 (`--half-backbone`), the "
            "file the bundled `demo-base` ships; the fine-tunes themselves train and ship in float32.",
        ]
    return lines


def _curriculum_table(evals: list[dict], title: str) -> list[str]:
    """Validation accuracy per question kind at each logged evaluation, with each kind's chance."""
    kinds = list(evals[-1]["eval"])
    lines = [
        "",
        f"{title}, validation accuracy per question kind (%):",
        "",
        "| step | " + " | ".join(k.removeprefix("perception_") for k in kinds) + " | macro |",
        "|---" * (len(kinds) + 2) + "|",
    ]
    for r in evals:
        lines.append(
            f"| {r['step']} | " + " | ".join(_pct(r["eval"][k]) for k in kinds) + f" | {_pct(r['eval_average'])} |"
        )
    chance = [100 / len(make_perception_sample(k.removeprefix("perception_"), "val", 0, 0).choices) for k in kinds]
    lines.append("| chance | " + " | ".join(f"{c:.1f}" for c in chance) + f" | {sum(chance) / len(chance):.1f} |")
    return lines


def _ci(summary: dict) -> str:
    return f"{_pct(summary['accuracy'])} [{_pct(summary['ci95'][0])}, {_pct(summary['ci95'][1])}]"


def _paired(c: dict) -> str:
    p = c["mcnemar_p"]
    return (
        f"{100 * c['delta']:+.1f} [{100 * c['ci95'][0]:+.1f}, {100 * c['ci95'][1]:+.1f}]"
        f", p {'< 0.001' if p < 0.001 else f'{p:.3f}'}"
    )


READER_ALONE = REPO / "docs" / "experiments" / "spatial-reader"  # tools/experiments/reader_alone.py's results


def reader_alone(task: str) -> dict | None:
    """The spatial reader alone on ``task`` (``reader_alone.py``'s JSON: test %, its interval, steps), or None."""
    try:
        return json.loads((READER_ALONE / f"{task}.json").read_text())
    except (OSError, ValueError):
        return None


def target_lines(results: dict) -> list[str]:
    """The spatial-reader issue's targets (#40), each met or missed with its figure: the model sees, the mechanism
    is visible (the paper's §4.6 pattern), LIVR against SFT."""
    ev, tasks, paired = results["eval"], results["tasks"], results["paired"]

    def above(variant: str) -> list[str]:
        rows = ev[variant]["standard"]["tasks"]
        return [t for t in tasks if rows[t]["accuracy"] >= rows[t]["chance"] + 0.20]

    best = max(VARIANTS, key=lambda v: (len(above(v)), ev[v]["standard"]["average"]["accuracy"]))
    seen = above(best)
    lines = [
        f"- The best variant ({best}) at chance + 20 points or better on at least 7 of the {len(tasks)} tasks: "
        f"**{'met' if len(seen) >= 7 else 'missed'}** ({len(seen)} of {len(tasks)}"
        + (f"; below: {', '.join(t for t in tasks if t not in seen)})" if len(seen) < len(tasks) else ")")
        + "; "
        + ", ".join(f"{v} {len(above(v))}" for v in VARIANTS),
    ]
    missing = [t for t in tasks if t not in seen]
    if missing:  # the fallback: each missing task's ceiling with the new reader alone, where measured
        lines += [
            "",
            "  Each task the best variant leaves below chance + 20, beside the spatial reader alone on it (its "
            "tokens, a linear read-out, every parameter trained on that task only; "
            f"`{READER_ALONE.relative_to(REPO)}/`):",
            "",
            "  | task | chance | best variant | reader alone (test, 500 questions) |",
            "  |---|---|---|---|",
        ]
        rows = ev[best]["standard"]["tasks"]
        for t in missing:
            alone = reader_alone(t)
            ceiling = (
                f"{alone['test']:.1f} [{alone['test_interval'][0]:.1f}, {alone['test_interval'][1]:.1f}] "
                f"after {alone['steps']:,} steps"
                if alone
                else "not measured alone"
            )
            lines.append(f"  | {t} | {_pct(rows[t]['chance'])} | {_pct(rows[t]['accuracy'])} | {ceiling} |")
        lines.append("")
    if "livr_vs_latents_only_bottleneck" in paired:
        b = paired["livr_vs_latents_only_bottleneck"]
        ahead = [t for t in tasks if b["tasks"][t]["delta"] > 0]
        ok = b["average"]["delta"] >= 0.10 and b["average"]["ci95"][0] > 0 and len(ahead) >= 5
        lines.append(
            f"- Under a test-time bottleneck, LIVR ≥ latents-only + 10 points (paired interval above 0) and above it "
            f"on at least 5 tasks: **{'met' if ok else 'missed'}** (LIVR − latents-only {_paired(b['average'])}; "
            f"above on {len(ahead)} of {len(tasks)})"
        )
    if "livr_stage1_only" in ev:
        s1 = ev["livr_stage1_only"]["bottleneck"]["average"]
        ok = s1["accuracy"] >= s1["chance"] + 0.15
        lines.append(
            f"- Stage-1 checkpoint under the bottleneck mask ≥ chance + 15 points: "
            f"**{'met' if ok else 'missed'}** "
            f"({_pct(s1['accuracy'])} vs chance {_pct(s1['chance'])}; full mask "
            f"{_pct(ev['livr_stage1_only']['standard']['average']['accuracy'])})"
        )
    if "livr_standard_vs_blind" in paired:
        c = paired["livr_standard_vs_blind"]["average"]
        ok = c["delta"] >= 0.05 and c["ci95"][0] > 0
        lines.append(
            f"- Blinding LIVR's latents costs at least 5 points (interval above 0): **{'met' if ok else 'missed'}** "
            f"(standard − blinded {_paired(c)})"
        )
    vs_sft = paired["livr_vs_sft"]["average"]
    if vs_sft["delta"] >= 0.02 and vs_sft["ci95"][0] > 0:
        verdict = "**met**: LIVR ≥ SFT + 2 points with the paired interval above 0"
    elif vs_sft["ci95"][1] >= 0:
        verdict = "goal **missed**, but LIVR is not significantly below SFT (the paired interval reaches 0)"
    else:
        verdict = "**missed**: LIVR is significantly below SFT"
    lines.append(f"- LIVR against SFT: {verdict} (LIVR − SFT {_paired(vs_sft)})")
    return lines


def latent_use_lines(results: dict) -> list[str]:
    """The paper's §4.6 table, averaged over the tasks, plus the bottleneck per task."""
    ev, att = results["eval"], results.get("answer_latent_attention", {})
    names = [n for n in ("sft", "latents_only", "livr", "livr_stage1_only") if n in ev]
    header = {
        "sft": "SFT",
        "latents_only": "latents-only",
        "livr": "LIVR",
        "livr_stage1_only": "LIVR Stage-1 checkpoint",
    }
    lines = [
        "| test (average over tasks, %) | " + " | ".join(header[n] for n in names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    labels = {
        "standard": "standard evaluation",
        "bottleneck": "bottleneck mask at test time",
        "blind": "latents blinded (cut from the image)",
        "removed": "latents removed (nobody reads them)",
        "bottleneck_blind": "bottleneck + latents blinded (no route from the image left)",
    }
    for condition, label in labels.items():
        cells = [_pct(ev[n][condition]["average"]["accuracy"]) if condition in ev[n] else "–" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = []
    for n in names:
        k = results["configs"].get(n, results["configs"]["livr"]).get("n_latents", 0) if n != "sft" else 0
        cells.append(f"{att[n]:.3f} ({att[n] / k:.4f} per latent)" if k and n in att else "–")
    lines.append(
        "| mean answer → latent attention (mass on all K, layers and heads averaged) | " + " | ".join(cells) + " |"
    )
    chance = ev["livr"]["standard"]["average"]["chance"]
    lines += [
        "",
        f"Chance: {_pct(chance)} %. Per task, under the bottleneck mask at test time (%):",
        "",
        "| task | chance | latents-only | LIVR | LIVR Stage-1 checkpoint |",
        "|---|---|---|---|---|",
    ]
    for t in results["tasks"]:
        cells = [
            _pct(ev[n]["bottleneck"]["tasks"][t]["accuracy"]) if n in ev else "–"
            for n in ("latents_only", "livr", "livr_stage1_only")
        ]
        lines.append(f"| {t} | {_pct(ev['livr']['standard']['tasks'][t]['chance'])} | " + " | ".join(cells) + " |")
    return lines


def accuracy_table_lines(results: dict) -> list[str]:
    """Test accuracy per task for the three variants, with the paired LIVR − SFT column."""
    ev, paired = results["eval"], results["paired"]["livr_vs_sft"]
    lines = ["| task | chance | SFT | latents-only | LIVR | LIVR − SFT, paired |", "|---|---|---|---|---|---|"]
    for t in results["tasks"]:
        row = [ev[v]["standard"]["tasks"][t] for v in VARIANTS]
        lines.append(
            f"| {t} | {_pct(row[0]['chance'])} | {' | '.join(_ci(r) for r in row)} | {_paired(paired['tasks'][t])} |"
        )
    avg = [ev[v]["standard"]["average"] for v in VARIANTS]
    lines.append(
        f"| **average** | {_pct(avg[0]['chance'])} | {' | '.join(_pct(a['accuracy']) for a in avg)} | "
        f"{_paired(paired['average'])} |"
    )
    return lines


def write_results_md(results: dict, path: Path, out: Path) -> Path:
    paired = results["paired"]["livr_vs_sft"]
    lines = [
        "# Results: the demo models",
        "",
        f"Measured by `python -m tools.reproduce --preset {results['preset']}"
        + (" --finetune full" if results.get("finetune") == "full" else "")
        + "` on this machine (2 CPU cores, no GPU). "
        f"Test split: {results['n_test_per_task']} fresh questions per task from seed {results['test_seed']} "
        "(never seen in training or validation), the same questions for every model. Accuracy in %, 95 % Wilson "
        "intervals in brackets; LIVR − SFT is paired (the same questions): its 95 % interval comes from a "
        "paired bootstrap (questions resampled within each task) and p from McNemar's exact test.",
        "",
    ]
    lines += accuracy_table_lines(results)
    lines += ["", "![results](results.png)", "", "## Targets", ""] + target_lines(results)
    lines += ["", "## Are the latents used? (the paper's §4.6 table, here over all tasks)", ""]
    lines += latent_use_lines(results)
    lines += backbone_section(out)
    size = results.get("backbone")
    size_text = f"{size['parameters'] / 1e6:.1f} M parameters" if size else "a few M parameters"
    lines += [
        "",
        "## Beside the paper",
        "",
        f"The paper reports LIVR − SFT of +3.4 to +6.2 points on average (Qwen2.5-VL-3B: "
        f"+{PAPER_DELTAS['average']}, jigsaw +{PAPER_DELTAS['jigsaw']}, functional correspondence "
        f"+{PAPER_DELTAS['functional_correspondence']}); ours on the demo backbone: "
        f"{100 * paired['average']['delta']:+.1f} points (paired 95 % interval "
        f"{100 * paired['average']['ci95'][0]:+.1f} to {100 * paired['average']['ci95'][1]:+.1f}). The backbones "
        f"differ by three orders of magnitude ({size_text} trained from scratch on CPU vs 3–7 B pretrained), "
        "so only the direction is comparable.",
        "",
        "## Settings",
        "",
    ]
    pre, words = results["pretrain_config"], results.get("words_config")
    cfg = results["configs"]["livr"]
    phase = results.get("phase_seconds", {})

    def took(name: str) -> str:
        return f"{phase[name] / 60:.1f} min" if phase.get(name) is not None else "time not recorded"

    known = [v for v in phase.values() if v is not None]
    evaluation = results["seconds"].get("eval", 0.0)
    vis, warm = results["vision_config"], results["warm_start_config"]
    if size:
        lines.append(
            f"- Backbone: {size_text}; language model {size['text_layers']} layers of width "
            f"{size['text_hidden']}, vision tower {size['vision_layers']} layers of width "
            f"{size['vision_hidden']}"
            + (
                f", {size['image_size']}-px images in {size['patch_size']}-px patches "
                f"({(size['image_size'] // size['patch_size']) ** 2} image tokens)"
                if size.get("image_size") and size.get("patch_size")
                else ""
            )
            + "."
        )
    lines += [
        f"- Vision-tower pretraining (dense patch labels, `livr_viz/training/vision_pretrain.py`): "
        f"{vis['steps']} steps, "
        f"batch {vis['batch_size']} images, lr {vis['lr']}"
        + (", on the word format's images with the every-colour head" if vis.get("markers") else "")
        + f", {took('vision')}. The phases after it "
        + ("keep the tower frozen." if pre.get("freeze_vision_tower") else "train the tower too."),
        f"- Perception warm start (colour question only, full parameters): {warm['steps']} steps, batch "
        f"{warm['batch_size']}, lr {warm['lr']}, warmup {warm['warmup_fraction']:.0%}, "
        f"{took('pretrain_colour')}.",
        f"- Pretraining (full parameters, perception curriculum): {pre['steps']} steps, "
        f"batch {pre['batch_size']}, lr {pre['lr']}, {took('pretrain')}.",
    ]
    if words:
        lines.append(
            f"- Word curriculum (full parameters, `perception:words`: the tasks' read-outs in their own "
            f"layouts, `livr_viz/data/perception.py`): {words['steps']} steps, batch {words['batch_size']}, "
            f"lr {words['lr']}, {took('pretrain_words')}."
        )
    tuned = (
        "every parameter (`--finetune full`)"
        if cfg.get("full_finetune")
        else f"LoRA r {cfg['lora_r']}, α {cfg['lora_alpha']}"
    )
    lines += [
        f"- Fine-tunes ({tuned}, K = {cfg['n_latents']}, latents "
        f"`{cfg.get('latent_placement', 'before_answer')}`, answers `{cfg.get('answer_format', 'letter')}`): "
        f"{cfg['steps']} steps each, batch {_batch(cfg)}, lr {cfg['lr']}, LIVR stage 1 = "
        f"{cfg['stage1_fraction']:.0%} of steps{_livr_rates(cfg)}; seed {cfg['seed']}, "
        f"data seed {cfg['data_seed']}; "
        f"{', '.join(f'{v} {took(v)}' for v in VARIANTS)}.",
        f"- Evaluation: {evaluation / 60:.1f} min. Sum of the phase times and the evaluation: "
        f"{(sum(known) + evaluation) / 60:.1f} min (each phase timed when it ran; a phase killed and resumed "
        "counts only its last stretch).",
        "- Task difficulty: the defaults of each task's knob dataclass in `livr_viz/data/tasks.py` "
        "(no task was made easier for these numbers).",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def _variant_list(text: str) -> list[str]:
    if text.strip() == "none":  # the backbone only
        return []
    names = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in names if v not in VARIANTS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"variants are {', '.join(VARIANTS)} (or none); got {text!r}")
    return names


def build_parser() -> argparse.ArgumentParser:
    from livr_viz.cli.common import finish_help
    from livr_viz.cli.training import FINETUNE_HELP, TASK_WEIGHTS_HELP

    p = argparse.ArgumentParser(
        prog="python -m tools.reproduce",
        description="pretrain the demo backbone, fine-tune 3 variants, evaluate, RESULTS.md "
        "(run from the root of a clone of livr-viz)",
    )
    p.add_argument(
        "--preset",
        default="demo",
        help="quick (tests, ~2 min) | demo | full (with --finetune full: the demo backbone, then 5,000 "
        "steps a variant, about 76 min each on 2 cores; the shipped models)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="run directory (default: the user's cache, ~/.cache/livr-viz/runs/reproduce); starts from "
        "OUT/init when that holds a backbone (e.g. one of another size from `livr-viz build-demo "
        "--out OUT/init --text-hidden 384`), else from a fresh shipped-size one",
    )
    p.add_argument("--tasks", default="all")
    p.add_argument("--n-test", type=int, default=200, help="test samples per task")
    p.add_argument(
        "--vision-steps",
        type=int,
        default=None,
        help="stage-0 (vision tower) steps (default: the preset's, 600 for demo)",
    )
    p.add_argument(
        "--vision-markers",
        action="store_true",
        help="stage 0 on the word format's images, learning every colour a patch holds (see "
        "`pretrain-vision --markers`)",
    )
    p.add_argument(
        "--tower",
        choices=TOWERS,
        default="vit",
        help="a fresh backbone's vision tower: vit (the shipped CLIP-style one) or spatial (the spatial "
        "reader: conv stem + global attention layers, livr_viz/core/spatial_reader.py)",
    )
    p.add_argument(
        "--vision-compare",
        action="store_true",
        help="stage 0 also learns the panel and marker tasks' comparisons (a linear read-out per task "
        "of the tower's flattened tokens)",
    )
    p.add_argument(
        "--freeze-vision-tower",
        action="store_true",
        help="keep the vision tower frozen in the pretraining phases after stage 0 (LLaVA's recipe; the "
        "shipped backbone trained it)",
    )
    p.add_argument("--pretrain-steps", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="fine-tune steps per variant")
    fine_tune_options = {  # flag: (argparse settings, help)
        "--grad-accum": (dict(type=int), "micro-batches per optimizer step (effective batch = batch size x this)"),
        "--task-balance": (
            dict(choices=TASK_BALANCES),
            "grad_norm gives every task the same gradient norm (one task per micro-batch)",
        ),
        "--task-weights": (dict(metavar="TASK=W,..."), TASK_WEIGHTS_HELP),
        "--stage2-lr": (
            dict(type=float),
            "the LIVR fine-tune's Stage-2 peak learning rate (default: the preset's lr, as the paper; the LoRA "
            "presets peak at 2e-3, the full fine-tunes at 3e-4)",
        ),
        "--stage1-body-lr-scale": (
            dict(type=float),
            "LIVR's Stage-1 rate for every parameter but the latent rows, as a fraction of the rate (default 1, as "
            "the paper; 0 trains the latent rows alone in Stage 1)",
        ),
        "--stage1-fraction": (
            dict(type=float),
            "LIVR's share of steps in Stage 1 (default 0.4, the paper's 4/6); the controls have one stage",
        ),
        "--stage2-open-steps": (
            dict(type=int),
            "LIVR's Stage 2 opens the text rows' view of the image over this many steps (a bias on their image "
            "keys from -50 up to 0) instead of at once (default 0, as the paper)",
        ),
        "--stage1-focus": (
            dict(metavar="TASK,..."),
            "LIVR's Stage 1 opens with one focus block per task named, in order: for --stage1-focus-steps steps the "
            "task fills --stage1-focus-share of every batch, the rest is the plain mix (default: the plain mix)",
        ),
        "--stage1-focus-steps": (dict(type=int), "steps of each of LIVR's Stage-1 focus blocks"),
        "--stage1-focus-share": (dict(type=float), "the focus task's share of every batch in its block (default 0.5)"),
    }
    for flag, (settings, text) in fine_tune_options.items():
        p.add_argument(flag, default=None, help="fine-tunes: " + text, **settings)
    p.add_argument("--finetune", choices=FINETUNES, default="lora", help="the fine-tunes: " + FINETUNE_HELP)
    p.add_argument(
        "--variants",
        type=_variant_list,
        help="train only these fine-tunes (comma list of " + ", ".join(VARIANTS) + "; none: the backbone only) after "
        "the backbone and stop before the evaluation, so two processes can train the trio side by side on one "
        "--out; the command without --variants then evaluates",
    )
    p.add_argument(
        "--livr-branch-from",
        metavar="RUN",
        default=None,
        help="give the LIVR fine-tune the Stage 1 of the LIVR run in RUN (its stage1_checkpoint/) and train only "
        "its Stage 2, e.g. another --stage2-lr or --stage2-open-steps; every other setting and the backbone must match",
    )
    p.add_argument(
        "--half-backbone",
        action="store_true",
        help="round the finished backbone to float16 and fine-tune the trio from that rounding (the bundled "
        "demo-base then ships at half the size, bit for bit the trio's start)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="fine-tune seed: LoRA / latent init, dropout, training data and order (default 42 / data 0)",
    )
    p.add_argument(
        "--install",
        action="store_true",
        help="copy the backbone and the three fine-tunes into assets/ (the bundled demo-base, demo-livr, "
        "demo-latents-only, demo-sft) and RESULTS.md to the repo",
    )
    finish_help(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line: one line and exit 2 for a user error (as ``livr-viz`` does)."""
    from livr_viz.cli.common import _quiet_transformers
    from livr_viz.core.fsutil import cache_dir
    from livr_viz.training.trainer import parse_task_weights

    args = build_parser().parse_args(argv)
    _quiet_transformers()
    out = args.out or str(cache_dir("runs", "reproduce"))
    try:
        results = reproduce(
            out,
            preset=args.preset,
            tasks=args.tasks,
            n_test=args.n_test,
            install=args.install,
            pretrain_steps=args.pretrain_steps,
            steps=args.steps,
            seed=args.seed,
            grad_accum=args.grad_accum,
            task_balance=args.task_balance,
            task_weights=None if args.task_weights is None else parse_task_weights(args.task_weights),
            stage2_lr=args.stage2_lr,
            stage1_body_lr_scale=args.stage1_body_lr_scale,
            stage2_open_steps=args.stage2_open_steps,
            stage1_focus=args.stage1_focus,
            stage1_focus_steps=args.stage1_focus_steps,
            stage1_focus_share=args.stage1_focus_share,
            stage1_fraction=args.stage1_fraction,
            vision_steps=args.vision_steps,
            vision_markers=args.vision_markers,
            freeze_vision_tower=args.freeze_vision_tower,
            tower=args.tower,
            vision_compare=args.vision_compare,
            finetune=args.finetune,
            variants=args.variants,
            half_backbone=args.half_backbone,
            livr_branch_from=args.livr_branch_from,
        )
    except LIVRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.variants is not None:  # [] is --variants none: the backbone only, nothing evaluated
        return 0
    print(f"wrote {Path(out) / 'RESULTS.md'} ({results['seconds']['total'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

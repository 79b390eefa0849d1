"""How far can the demo architecture get on one task alone? A fine-tune of the discs3 backbone on a single task of
the suite with fresh questions (none repeats), validation on 100 questions every 250 steps.
  PYTHONPATH=SNAPSHOT python ceiling_run.py OUT BACKBONE TASK MODE STEPS LR
MODE: full (every parameter, vision tower and projector included) or lora (the demo SFT recipe: LoRA r 16 on the
language model). Resumable: rerun the same command. README.md lists the runs."""

import sys
from pathlib import Path

from livr_viz.training.trainer import Trainer, build_model_for_training, preset_config

out, backbone, task, mode, steps, lr = sys.argv[1:7]
out = Path(out)
if mode not in ("full", "lora"):
    raise SystemExit(f"MODE must be full or lora, not {mode!r}")
cfg = preset_config(
    "demo",
    pretrain=(mode == "full"),
    variant="sft",
    tasks=task,
    steps=int(steps),
    lr=float(lr),
    n_train_per_task=1_000_000,
    n_val_per_task=100,
    eval_every=250,
    checkpoint_every=100,
)
print(cfg.to_dict(), flush=True)
lm = build_model_for_training(backbone, cfg)
Trainer(lm, cfg, out).run(resume=(out / "checkpoint").is_dir())

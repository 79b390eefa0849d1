"""The nine-task trio with every parameter trained (vision tower, projector, language model, embeddings), instead of
LoRA on the language model: the demo backbone is 3 M parameters trained from scratch, and LoRA + a frozen tower left
five of the nine tasks at chance even with the image in view (docs/experiments/stage1-route/).
  python trio_run.py OUT VARIANT [STEPS] [LR] [STAGE2_LR]
Every variant: the shipped demo-base, the pretraining presets' optimiser (AdamW, wd 0.05, 3 % warmup + cosine per
stage), batch 32, fresh training questions (none repeats; data seed 0, the same order for every variant), validation
on 100 questions per task every 250 steps. Resumable: rerun the same command. README.md lists the runs."""
import sys
from pathlib import Path

from livr_viz.training.trainer import Trainer, build_model_for_training, preset_config

out, variant = Path(sys.argv[1]), sys.argv[2]
steps = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
lr = float(sys.argv[4]) if len(sys.argv) > 4 else 3e-4
stage2_lr = float(sys.argv[5]) if len(sys.argv) > 5 else None
cfg = preset_config("demo", pretrain=True, variant=variant, tasks="all", steps=steps, lr=lr, stage2_lr=stage2_lr,
                    n_train_per_task=1_000_000, n_val_per_task=100, eval_every=250, checkpoint_every=100)
print(cfg.to_dict(), flush=True)
lm = build_model_for_training("demo-base", cfg)
Trainer(lm, cfg, out, progress=False).run(resume=(out / "checkpoint").is_dir())

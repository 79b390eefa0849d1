"""Diagnostic: a full-parameter SFT (language model, projector and vision tower all trained) of the discs3 backbone
on the nine tasks, with the demo fine-tune's data (1,000 questions per task, 1,000 steps, batch 32) and the
pretraining phases' lr 1e-3. Is the demo architecture able to learn the tasks from this data at all, beyond what
LoRA on a frozen backbone reaches (SFT 43.9 %)?
  PYTHONPATH=SNAPSHOT python full_finetune_sft.py OUT BACKBONE [STEPS N_TRAIN_PER_TASK]
(BACKBONE: the discs3 run's pretrain-words/model; README.md ran the defaults 1000 1000, then 2000 1000000: fresh
questions, none repeats)"""

import sys
from pathlib import Path

from livr_viz.training.trainer import Trainer, build_model_for_training, preset_config

out, backbone = Path(sys.argv[1]), sys.argv[2]
steps, n_train = (int(a) for a in (sys.argv[3:5] or (1000, 1000)))
cfg = preset_config(
    "demo",
    pretrain=True,
    tasks="all",
    steps=steps,
    lr=1e-3,
    n_train_per_task=n_train,
    n_val_per_task=30,
    eval_every=200,
    checkpoint_every=100,
)
print(cfg.to_dict())
lm = build_model_for_training(backbone, cfg)
Trainer(lm, cfg, out).run(resume=(out / "checkpoint").is_dir())

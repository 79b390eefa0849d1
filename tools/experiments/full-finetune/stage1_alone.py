"""Does Stage 1 alone route a task through the latents? A full-parameter LIVR fine-tune of the shipped demo-base that
stays in the bottleneck stage for all its steps (stage1_fraction 1.0), validation every EVAL_EVERY steps (default
100; the CLI has no such option) on 100 questions per task under the bottleneck mask (``eval_bottleneck``: the
answer rows see no image) and with the image in view.
  python stage1_alone.py OUT TASKS STEPS [EVAL_EVERY]
The full fine-tune preset otherwise (lr 3e-4, batch 32, fresh questions). Resumable: rerun the same command."""

import sys
from pathlib import Path

from livr_viz.training.trainer import Trainer, build_model_for_training, preset_config

out, tasks, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
eval_every = int(sys.argv[4]) if len(sys.argv) > 4 else 100
cfg = preset_config(
    "demo", finetune="full", variant="livr", tasks=tasks, steps=steps, stage1_fraction=1.0, eval_every=eval_every
)
print(cfg.to_dict(), flush=True)
lm = build_model_for_training("demo-base", cfg)
Trainer(lm, cfg, out, progress=False).run(resume=(out / "checkpoint").is_dir())

"""Stage 1 alone on some tasks (bottleneck only) from a LIVR run's backbone and settings, with the latent rows
initialised as copies of the answer-predicting row's token (the chat template's last token before the answer) plus
a little noise, instead of random rows. The question it answers: the backbone's curricula teach the *answer row* to
read the image; does a latent that starts as that row's token read like it, so the route forms sooner?

    python tools/experiments/spatial-trio/latent_init.py /work/runs/spatial-trio/livr OUT --tasks object_localization \\
        [--init answer|random] [--noise 0.1] [--steps 400]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from livr_viz.core.errors import LIVRError
from livr_viz.training.trainer import TrainConfig, Trainer, build_datasets, build_model_for_training


def copy_answer_token(lm, cfg: TrainConfig, noise: float, seed: int) -> int:
    """Set every latent row to the answer row's token embedding + noise x the embeddings' per-dimension std;
    returns that token's id."""
    train, _ = build_datasets(cfg)
    item = train[0]
    batch = lm.build_inputs([item.image], [item.prompt], [item.target])
    token = int(batch.inputs["input_ids"][0, int(batch.answer_start[0]) - 1])
    emb = lm.base_model.get_input_embeddings()
    ids = list(lm.latent_token_ids)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        latent = set(ids)
        keep = [i for i in range(emb.num_embeddings) if i not in latent]
        std = emb.weight[keep].float().std(0)
        z = torch.randn(len(ids), emb.weight.shape[1], generator=gen)
        emb.weight[ids] = (emb.weight[token].float() + noise * std * z).to(emb.weight.dtype)
    return token


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="the LIVR run folder (backbone.json, train_config.json)")
    p.add_argument("out", type=Path)
    p.add_argument("--tasks", required=True)
    p.add_argument("--init", choices=("answer", "random"), default="answer")
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=400)
    args = p.parse_args(argv)
    try:
        backbone = json.loads((args.run / "backbone.json").read_text())["backbone"]
        settings = json.loads((args.run / "train_config.json").read_text())
        changes = dict(tasks=args.tasks, steps=args.steps, stage1_fraction=1.0, stage2_lr=None, eval_every=100)
        cfg = TrainConfig.from_dict({**settings, **changes, "n_val_per_task": 100})
        lm = build_model_for_training(backbone, cfg)
        if not cfg.full_finetune:
            raise LIVRError("this script writes the latent rows of a full fine-tune's embedding matrix")
        args.out.mkdir(parents=True, exist_ok=True)
        note = {"init": args.init, "noise": args.noise}
        if args.init == "answer":
            note["token"] = copy_answer_token(lm, cfg, args.noise, cfg.seed)
        (args.out / "latent_init.json").write_text(json.dumps(note) + "\n")
        Trainer(lm, cfg, args.out).run()
    except LIVRError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

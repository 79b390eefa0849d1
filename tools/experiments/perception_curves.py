"""How fast does a backbone learn the perception questions?  The experiments behind RESULTS.md's "what we tried".

A minimal full-parameter loop (AdamW, warmup + cosine, answer-only loss; no checkpoints) that samples perception
questions at random, optionally in phases of kinds, and prints validation accuracy per kind.  Examples:

    python tools/experiments/perception_curves.py --init runs/demo/init --kinds colour --steps 300
    python tools/experiments/perception_curves.py --init runs/demo/vision/model --kinds quadrant --steps 250
    python tools/experiments/perception_curves.py --init runs/demo/vision/model \\
        --phases "colour:150;colour+shape+quadrant+count+brighter+label_on+box_contains+same_shape:1650" --steps 1650
    python tools/experiments/perception_curves.py --init runs/demo/pretrain/model --kinds task:counting --word-answers

Kinds are perception kinds or, as ``task:NAME``, tasks of the suite (``--word-answers``: scored and trained on the
option text instead of its letter, the "cloze" formulation).
"""

import argparse
import time

import numpy as np
import torch

from livr_viz.core.model import LIVRModel
from livr_viz.data import make_sample
from livr_viz.data.perception import CURRICULUM, make_perception_sample
from livr_viz.data.tasks import LETTERS
from livr_viz.training.evaluate import evaluate
from livr_viz.training.trainer import warmup_cosine


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True, help="backbone directory to start from")
    ap.add_argument(
        "--kinds", default=",".join(CURRICULUM), help="kinds sampled (and validated) when --phases is empty"
    )
    ap.add_argument("--phases", default="", help='"k1+k2:until_step;k3:until_step" (kinds per phase)')
    schedule = {"--steps": 300, "--lr": 1e-3, "--batch-size": 32, "--warmup": 50, "--eval-every": 100}
    for flag, default in schedule.items():
        ap.add_argument(flag, type=type(default), default=default)
    ap.add_argument("--n-val", type=int, default=50, help="validation questions per kind")
    ap.add_argument(
        "--word-answers",
        action="store_true",
        help="suite tasks in the word format (options named by marker colour / position, answered by "
        "the word) instead of BLINK's letters",
    )
    ap.add_argument("--save", default=None, help="save the trained backbone here at the end")
    ap.add_argument("--seed", type=int, default=0, help="seeds the sampling order and dropout")
    ap.add_argument(
        "--blocked",
        action="store_true",
        help="task-blocked batches: every batch holds one kind (round-robin) instead of a mix",
    )
    ap.add_argument(
        "--dense-lookup",
        type=int,
        default=0,
        help="pick_option training targets carry N more lookups on the same options after the answer "
        '("B\\nWhich option is 8? C ..."): N+1 supervised letters per question; '
        "validation unchanged",
    )
    a = ap.parse_args(argv)

    def item(kind: str, split: str, index: int):
        if not kind.startswith("task:"):
            s = make_perception_sample(kind, split, 0, index)
            if kind == "pick_option" and split == "train" and a.dense_lookup:
                return _dense_lookup(s, a.dense_lookup, np.random.default_rng(index))
            return s
        return make_sample(
            kind.removeprefix("task:"), split, 0, index, answer_format="word" if a.word_answers else "letter"
        )

    # "kinds:until" with kinds like task:art_style, so split at the last colon
    phases = [(p.rsplit(":", 1)[0].split("+"), int(p.rsplit(":", 1)[1])) for p in a.phases.split(";") if p]
    kinds = sorted({k for ks, _ in phases for k in ks}) if phases else a.kinds.split(",")
    torch.manual_seed(a.seed)
    lm = LIVRModel.from_backbone(a.init, variant="sft", lora=False)
    val = [item(k, "val", i) for i in range(a.n_val) for k in kinds]
    params = [p for p in lm.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(a.seed)
    t0 = time.time()
    lm.model.train()
    for step in range(a.steps):
        lr = warmup_cosine(step, a.steps, max(1, a.warmup), a.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        now = next((ks for ks, until in phases if step < until), phases[-1][0]) if phases else kinds
        # blocked: this step's kind for the whole batch; mixed: a kind drawn per question
        items = [
            item(
                now[step % len(now)] if a.blocked else now[int(rng.integers(len(now)))],
                "train",
                int(rng.integers(10**7)),
            )
            for _ in range(a.batch_size)
        ]
        batch = lm.build_inputs([it.image for it in items], [it.prompt for it in items], [it.target for it in items])
        loss = lm.loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if (step + 1) % 25 == 0:
            print(f"step {step + 1} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            lm.model.eval()
            m = evaluate(lm, val, "full", batch_size=64)
            lm.model.train()
            print(
                "EVAL",
                step + 1,
                {k.removeprefix("perception_"): round(v["accuracy"], 2) for k, v in m["tasks"].items()},
                flush=True,
            )

    if a.save:
        from livr_viz.core.fsutil import save_backbone

        lm.model.eval()
        save_backbone(lm.model, lm.processor, a.save)
        print("saved", a.save)


def _dense_lookup(sample, n: int, rng):
    """A training item whose target answers ``n`` more questions on the same options after the real answer."""
    from types import SimpleNamespace

    extra = [int(i) for i in rng.integers(len(sample.choices), size=n)]
    target = sample.target + "".join(f"\nWhich option is {sample.choices[i]}? {LETTERS[i]}" for i in extra)
    return SimpleNamespace(image=sample.image, prompt=sample.prompt, target=target)


if __name__ == "__main__":
    main()

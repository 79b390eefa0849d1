"""How much of a multi-task fine-tune's update does each task get?  Per-task gradient norms and directions.

For an SFT LoRA model on the bundled backbone — fresh (LoRA B = 0, the first step) or with a trained adapter loaded —
each task's gradient of the answer loss is taken on two independent batches of ``--n`` training questions (dropout
off).  Printed per task: the loss, the norm of the mean gradient, the cosine between the two halves (how consistent
the direction is from batch to batch: ~1 is signal, ~0 is noise), and the task's share of the plain multi-task mean
gradient (its projection on the mean, as a fraction of the mean's squared norm; shares sum to 1).  A task whose
gradient is much larger than the others' sets the direction of every mixed step and, through AdamW's second
moment, the step size of every other task.

    python tools/experiments/task_gradients.py                                   # fresh LoRA on assets/demo-base
    python tools/experiments/task_gradients.py --adapter runs/nine_sft/model    # a trained SFT adapter
"""

import argparse
import json

import torch

from livr_viz.data.dataset import LIVRCollator, SyntheticTaskDataset
from livr_viz.data.tasks import resolve_tasks
from livr_viz.training.trainer import TrainConfig, _trainable, build_model_for_training


def task_gradient(lm, params: dict, task: str, start: int, n: int, data_seed: int) -> tuple[float, torch.Tensor]:
    data = SyntheticTaskDataset([task], "train", 1000, data_seed)
    batch = LIVRCollator(lm)([data[i] for i in range(start, start + n)])
    for p in params.values():
        p.grad = None
    loss = lm.loss(batch, "full")
    loss.backward()
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params.values()])
    return float(loss.detach()), flat.clone()


def measure(adapter: str | None, tasks: list[str], n: int, data_seed: int) -> dict:
    lm = build_model_for_training("demo-base", TrainConfig(variant="sft", tasks=",".join(tasks)))
    if adapter:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        missing = set_peft_model_state_dict(lm.model, load_file(f"{adapter}/adapter_model.safetensors"))
        if missing.unexpected_keys:
            raise SystemExit(f"{adapter} is not an SFT LoRA adapter of the demo backbone")
    lm.model.eval()
    params = _trainable(lm)
    rows, grads = {}, {}
    for task in tasks:
        loss_a, g_a = task_gradient(lm, params, task, 0, n, data_seed)
        loss_b, g_b = task_gradient(lm, params, task, n, n, data_seed)
        grads[task] = (g_a + g_b) / 2
        rows[task] = {
            "loss": (loss_a + loss_b) / 2,
            "grad_norm": float(grads[task].norm()),
            "half_cosine": float(torch.nn.functional.cosine_similarity(g_a, g_b, dim=0)),
        }
    mean = sum(grads.values()) / len(grads)
    for task in tasks:
        rows[task]["share_of_mean"] = float(torch.dot(grads[task] / len(grads), mean) / mean.norm() ** 2)
    return {"adapter": adapter, "n_per_half": n, "tasks": rows, "mean_grad_norm": float(mean.norm())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--adapter", default=None, help="a trained SFT LoRA adapter directory (default: fresh LoRA)")
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--n", type=int, default=32, help="training questions per half")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    result = measure(args.adapter, resolve_tasks(args.tasks), args.n, args.data_seed)
    print(f"{'task':<26} {'loss':>6} {'|grad|':>8} {'cos(halves)':>11} {'share':>7}")
    for task, r in result["tasks"].items():
        print(f"{task:<26} {r['loss']:6.3f} {r['grad_norm']:8.4f} {r['half_cosine']:+11.3f} {r['share_of_mean']:+7.3f}")
    print(f"norm of the mean gradient: {result['mean_grad_norm']:.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()

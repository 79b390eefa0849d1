"""How far does a change in one patch spread over a backbone's image tokens? (livr_viz.methods.patch_spread)

    python tools/experiments/patch_spread.py assets/demo-base assets/demo-livr/model [--spatial-init] [--n 9]

Per backbone: over the first N test images of the nine tasks (seed 2026), the share of the token movement that
stays on the changed patch's token (ring 0) and within one patch of it (rings 0-1), the movement of a token at each
distance relative to the changed token's, and how many probed patches move their own token most. ``--spatial-init``
adds a freshly initialised spatial reader (seed 0) for comparison.
"""

import argparse

import numpy as np

from livr_viz.core.model import load_backbone
from livr_viz.data import make_sample, task_names
from livr_viz.methods.patch_spread import patch_spread


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("backbones", nargs="*")
    ap.add_argument("--spatial-init", action="store_true")
    ap.add_argument("--n", type=int, default=9, help="images (one per task, cycling)")
    args = ap.parse_args()
    tasks = task_names()
    images = [make_sample(tasks[i % len(tasks)], "test", 2026, i // len(tasks)).image for i in range(args.n)]
    models = [(b, load_backbone(b)) for b in args.backbones]
    if args.spatial_init:
        from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone

        models.append(("spatial reader, fresh (seed 0)", build_demo_backbone(DemoBackboneConfig(tower="spatial"))))
    print(
        "| backbone | own token moves most | on the changed token | within one patch | neighbour / changed "
        "| farthest / changed |"
    )
    print("|---|---|---|---|---|---|")
    for name, (model, processor) in models:
        spreads = [patch_spread(model, processor, im, seed=i) for i, im in enumerate(images)]
        own = sum(sum(s.own_token_moves_most) for s in spreads)
        probes = sum(len(s.probes) for s in spreads)
        share = np.mean([s.ring_share for s in spreads], 0)
        rel = np.mean([s.ring_mean for s in spreads], 0)
        print(
            f"| {name} | {own}/{probes} | {100 * share[0]:.0f} % | {100 * share[:2].sum():.0f} % | "
            f"{rel[1]:.2f} | {rel[-1]:.2f} |"
        )


if __name__ == "__main__":
    main()

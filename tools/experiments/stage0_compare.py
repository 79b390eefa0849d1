"""Stage 0 with the comparison targets on a fresh spatial-reader backbone (docs/experiments/spatial-reader/).

    python tools/experiments/stage0_compare.py OUT [--steps 600]

Builds the backbone (seed 0, ``tower="spatial"``) in OUT/init and runs stage 0 at the demo settings with
``markers=True, compare=True`` into OUT/vision (log.jsonl: acc_compare / loss_compare beside the patch heads).
"""

import argparse

from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone
from livr_viz.training.vision_pretrain import VisionPretrainConfig, pretrain_vision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    init = save_demo_backbone(f"{args.out}/init", DemoBackboneConfig(seed=0, tower="spatial"))
    cfg = VisionPretrainConfig(steps=args.steps, markers=True, compare=True)
    pretrain_vision(init, cfg, f"{args.out}/vision", progress=False)


if __name__ == "__main__":
    main()

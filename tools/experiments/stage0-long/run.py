"""Does a longer stage 0 teach the tower shape identity? 12-px demo backbone, seed 0, stage 0 for 1,800 steps
(the demo preset runs 600); the shape head's accuracy is logged every 25 steps."""

from pathlib import Path

from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone
from livr_viz.training.vision_pretrain import VisionPretrainConfig, pretrain_vision

out = Path(__file__).resolve().parents[3] / "docs" / "experiments" / "stage0-long"  # beside its README
if not (out / "init" / "config.json").is_file():
    save_demo_backbone(out / "init", DemoBackboneConfig(seed=0))
pretrain_vision(out / "init", VisionPretrainConfig(steps=1800), out / "run")

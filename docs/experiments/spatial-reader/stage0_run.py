import sys
from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone
from livr_viz.training.vision_pretrain import VisionPretrainConfig, pretrain_vision
out = sys.argv[1]
init = save_demo_backbone(f"{out}/init", DemoBackboneConfig(seed=0, tower="spatial"))
pretrain_vision(init, VisionPretrainConfig(markers=True, compare=True), f"{out}/vision", progress=False)

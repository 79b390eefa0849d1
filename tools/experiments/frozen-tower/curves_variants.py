"""Experiment: tools/experiments/perception_curves.py with two switches (monkeypatched, the tool unchanged):
FREEZE_TOWER=1 keeps the vision tower frozen, TEXT_FIRST=1 puts the question before the image in the demo template.

    FREEZE_TOWER=1 python tools/experiments/frozen-tower/curves_variants.py --init BACKBONE --kinds shape,count
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import perception_curves as pc

from livr_viz.core.model import LIVRModel

orig = LIVRModel.prefix_text


def prefix_text(self, prompt):
    if os.environ.get("TEXT_FIRST") != "1":
        return orig(self, prompt)
    latents = "".join(self.latent_tokens)
    content = [{"type": "text", "text": prompt + "\n"}, {"type": "image"}]
    if latents:
        content.append({"type": "text", "text": latents})
    text = self.processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
    return text


LIVRModel.prefix_text = prefix_text
_fb = LIVRModel.from_backbone.__func__


def from_backbone(cls, *a, **k):
    lm = _fb(cls, *a, **k)
    if os.environ.get("FREEZE_TOWER") == "1":
        for p in lm.base_model.model.vision_tower.parameters():
            p.requires_grad_(False)
        print("tower frozen; trainable", sum(p.numel() for p in lm.model.parameters() if p.requires_grad), flush=True)
    return lm


LIVRModel.from_backbone = classmethod(from_backbone)
if __name__ == "__main__":
    pc.main()

"""One small adapter per model family: where image tokens are, what LoRA targets, positions, patch grids.

Everything architecture-specific lives here, the way peft keeps one folder per
tuner; the wrapper in :mod:`livr_viz.core.model` only calls these methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from livr_viz.core.errors import LIVRError

_LORA_LEAVES = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


@dataclass(frozen=True)
class Family:
    """Architecture adapter. Subclasses override what differs."""

    name: str
    model_types: tuple[str, ...]
    lm_prefix: str  # dotted path segment that names the language model inside the HF model
    vision_prefix: str  # attribute of the inner model that holds the vision encoder

    @property
    def lora_target_regex(self) -> str:
        """peft ``target_modules`` regex: attention and MLP projections of the language model only."""
        return rf".*{self.lm_prefix}\.layers\.\d+\.(self_attn|mlp)\.{_LORA_LEAVES}"

    def image_token_id(self, config, processor) -> int:
        for source in (config, processor):
            for attr in ("image_token_id", "image_token_index"):
                value = getattr(source, attr, None)
                if isinstance(value, int):
                    return value
        raise LIVRError(
            f"model family {self.name}: the model config has no image token id (image_token_id / image_token_index); "
            "LIVR needs a VLM whose processor inserts image placeholder tokens"
        )

    def language_model(self, model) -> torch.nn.Module:
        module = model
        for part in ("model", self.lm_prefix):
            module = getattr(module, part)
        return module

    def vision_encoder_parameters(self, model) -> list[torch.nn.Parameter]:
        """The vision tower's parameters, without the projector into the language model: what LLaVA-style
        training keeps frozen (``model.model.<vision_prefix>``)."""
        return list(getattr(model.model, self.vision_prefix).parameters())

    def processor_images(self, images: list) -> list:
        return images

    def load_processor(self, ref: str, trust_remote_code: bool = False):
        """The model's processor (tokenizer + image processor) from a directory or hub id."""
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(ref, trust_remote_code=trust_remote_code)

    def input_resolution(self, model, inputs: dict[str, Any]) -> tuple[int, int] | None:
        """(height, width) in pixels the processor resized a single image to, read from its output
        (``pixel_values`` [B, 3, H, W]); None where the output does not tell (tiled / multi-crop images)."""
        pixel_values = inputs.get("pixel_values")
        if pixel_values is not None and pixel_values.dim() == 4:
            height, width = pixel_values.shape[-2:]
            return int(height), int(width)
        return None

    def position_ids(self, model, inputs: dict[str, Any], padding_mask: torch.Tensor) -> torch.Tensor:
        """Position ids consistent with any padding side: count of real tokens before each position."""
        pos = padding_mask.long().cumsum(-1) - 1
        return pos.clamp_min(0)

    def patch_grid(self, model, inputs: dict[str, Any], index: int) -> tuple[int, int]:
        """(rows, cols) of the image-token grid of sample ``index``, in the order image tokens appear."""
        raise LIVRError(f"patch-grid layout of model family {self.name!r} is not supported yet")

    def square_tower(self, model) -> tuple[int, int]:
        """(image_size, patch_size) of a tower that always sees one square image on a fixed grid (the demo
        backbone's): what stage-0 pretraining and the patch-spread measurement need."""
        raise LIVRError(
            f"{model.config.model_type}: a fixed square patch grid is known only for single-image LLaVA "
            "towers (the demo backbone's)"
        )


@dataclass(frozen=True)
class LlavaFamily(Family):
    def patch_grid(self, model, inputs, index):
        size, patch = self.square_tower(model)
        return size // patch, size // patch

    def square_tower(self, model):
        vc = getattr(model.config, "vision_config", None)
        if vc is None or getattr(model.config, "model_type", "") != "llava" or not hasattr(vc, "patch_size"):
            raise LIVRError(
                f"patch-grid layout of {model.config.model_type} (multi-crop / anyres) is not supported yet"
            )
        return vc.image_size, vc.patch_size


@dataclass(frozen=True)
class QwenVLFamily(Family):
    def load_processor(self, ref, trust_remote_code=False):
        # the stock Qwen2-VL processor needs torchvision for its video half: ours is PIL-backed
        from livr_viz.core.processors import load_qwen_processor

        return load_qwen_processor(ref, trust_remote_code)

    def input_resolution(self, model, inputs):
        # pixel_values are flattened patches; the grid (t, h, w) in patches times the patch size gives the pixels
        patch = model.config.vision_config.patch_size
        height, width = (int(v) * patch for v in inputs["image_grid_thw"][0, 1:])
        return height, width

    def vision_encoder_parameters(self, model):
        # Qwen2-VL's projector (``merger``) lives inside ``visual``
        return [p for n, p in model.model.visual.named_parameters() if not n.startswith("merger.")]

    def position_ids(self, model, inputs, padding_mask):
        # M-RoPE positions come from a 2D padding mask; a 4D mask inside forward raises IndexError.
        base = model.model
        pos, _ = base.get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs.get("mm_token_type_ids"),
            image_grid_thw=inputs.get("image_grid_thw"),
            video_grid_thw=None,
            attention_mask=padding_mask,
        )
        return pos  # [3, B, T]

    def patch_grid(self, model, inputs, index):
        t, h, w = (int(v) for v in inputs["image_grid_thw"][index])
        merge = model.config.vision_config.spatial_merge_size
        return t * h // merge, w // merge


@dataclass(frozen=True)
class Idefics3Family(Family):
    def processor_images(self, images):
        return [[im] for im in images]


FAMILIES: tuple[Family, ...] = (
    LlavaFamily("llava", ("llava", "llava_next", "llava_onevision"), "language_model", "vision_tower"),
    QwenVLFamily("qwen2_vl", ("qwen2_vl", "qwen2_5_vl"), "language_model", "visual"),
    Idefics3Family("idefics3", ("idefics3", "smolvlm"), "text_model", "vision_model"),
)


def family_for(config) -> Family:
    model_type = getattr(config, "model_type", None)
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    supported = ", ".join(t for f in FAMILIES for t in f.model_types)
    raise LIVRError(f"unsupported model type {model_type!r}; supported: {supported}")

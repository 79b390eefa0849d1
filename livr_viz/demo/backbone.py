"""The embedded demo backbone: a tiny LLaVA (CLIP-style vision tower + Llama-style LM).

It is built from stock transformers classes, with our own byte-level BPE tokenizer
and a ``LlavaProcessor`` around a PIL-backed CLIP image processor (no torchvision),
and saved under ``assets/demo-base`` so ``from_pretrained`` loads it offline.

Bundled names:
    ``demo-base``           the backbone alone (no latents, no LoRA)
    ``demo-livr``           LIVR fine-tune (Stage 1 bottleneck + Stage 2), all nine tasks
    ``demo-latents-only``   latents added, Stage 2 only, all nine tasks
    ``demo-sft``            no latents, all nine tasks
    (every parameter fine-tuned, 5,000 steps each: ``livr-viz reproduce --preset full --finetune full``)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from livr_viz.core.config import check_one_of
from livr_viz.core.errors import LIVRError
from livr_viz.core.spatial_reader import SpatialReaderConfig
from livr_viz.data import make_sample, task_names
from livr_viz.data.perception import CURRICULUM, make_perception_sample
from livr_viz.demo.bundled import ASSETS_DIR, DEMO_NAMES, DEMO_SETS  # noqa: F401 - re-exported: the demo names live here too
from livr_viz.demo.tokenizer import build_bpe_tokenizer

DEMO_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>{{ '\\n' }}"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{{ '\\n' }}"
    "{% elif message['role'] == 'assistant' %}ASSISTANT:"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}</s>"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


TOWERS = ("vit", "spatial")


@dataclass
class DemoBackboneConfig:
    image_size: int = 96  # pixels, square; synthetic tasks default to this size
    patch_size: int = 12  # 8 x 8 = 64 image tokens (CLS dropped)
    vision_hidden: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 192
    text_layers: int = 4
    text_heads: int = 6
    text_intermediate: int = 512
    vocab_size: int = 1024
    max_positions: int = 1024
    seed: int = 0  # weight initialisation seed
    # "vit": the CLIP-style patch tower the shipped backbone has; "spatial": the convolutional spatial reader with
    # ``vision_layers`` global attention layers inside the tower (livr_viz.core.spatial_reader)
    tower: str = "vit"

    def __post_init__(self):
        check_one_of("tower", self.tower, TOWERS)
        small = {k: v for k, v in asdict(self).items() if k not in ("seed", "tower") and v < 1}
        if small:
            raise LIVRError(f"sizes must be positive: {small}")
        if self.image_size % self.patch_size:
            raise LIVRError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        for name in ("vision_hidden", "text_hidden"):
            heads = self.vision_heads if name.startswith("vision") else self.text_heads
            if getattr(self, name) % heads:
                raise LIVRError(f"{name} must be divisible by its number of heads ({heads})")


def demo_corpus(per_task: int = 30) -> list[str]:
    """Prompts and answers of the task suite and the perception curriculum: the demo tokenizer's training text."""
    lines = []
    for task in task_names():
        for i in range(per_task):
            for fmt in ("word", "letter"):  # both answer formats tokenize compactly
                s = make_sample(task, "train", 12345, i, answer_format=fmt)
                lines += [s.prompt, *s.choices]
    for kind in CURRICULUM:  # (the diagnostic kinds' few extra words are split into known pieces)
        for i in range(per_task):
            s = make_perception_sample(kind, "train", 12345, i)
            lines += [s.prompt, *s.choices]
    return lines


def build_demo_processor(cfg: DemoBackboneConfig) -> LlavaProcessor:
    tokenizer = build_bpe_tokenizer(
        cfg.vocab_size, extra_special_tokens=("<image>",), chat_template=DEMO_CHAT_TEMPLATE, corpus=demo_corpus()
    )
    image_processor = CLIPImageProcessorPil(
        size={"height": cfg.image_size, "width": cfg.image_size},
        crop_size={"height": cfg.image_size, "width": cfg.image_size},
        do_center_crop=False,
        do_convert_rgb=True,
    )
    vit = cfg.tower == "vit"
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=cfg.patch_size,
        vision_feature_select_strategy="default" if vit else "full",
        num_additional_image_tokens=1 if vit else 0,  # the ViT's CLS token, dropped by the "default" strategy
        chat_template=DEMO_CHAT_TEMPLATE,
    )


def vision_tower_config(cfg: DemoBackboneConfig):
    """The tower's config: a CLIP vision config, or the spatial reader's (a conv stem whose downsamplings multiply
    to ``patch_size``, then ``vision_layers`` global attention layers)."""
    if cfg.tower == "spatial":
        strides = {12: (2, 2, 3), 8: (2, 2, 2), 16: (2, 2, 4), 6: (1, 2, 3), 4: (1, 2, 2)}.get(cfg.patch_size)
        if strides is None:
            raise LIVRError(f"the spatial reader supports patch sizes 4, 6, 8, 12 and 16; got {cfg.patch_size}")
        return SpatialReaderConfig(
            image_size=cfg.image_size,
            patch_size=cfg.patch_size,
            strides=strides,
            hidden_size=cfg.vision_hidden,
            num_hidden_layers=cfg.vision_layers,
            num_attention_heads=cfg.vision_heads,
            intermediate_size=cfg.vision_hidden * 4,
            # no per-pixel channel norm on the full-resolution features: it divides out most of a flat region's
            # brightness, which relative reflectance and jigsaw's colour continuation are about
            first_norm=False,
        )
    return CLIPVisionConfig(
        hidden_size=cfg.vision_hidden,
        intermediate_size=cfg.vision_hidden * 4,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
        projection_dim=cfg.vision_hidden,
    )


def build_demo_config(cfg: DemoBackboneConfig, tokenizer) -> LlavaConfig:
    vision = vision_tower_config(cfg)
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_hidden,
        intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.text_heads,
        num_key_value_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default" if cfg.tower == "vit" else "full",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        image_seq_length=(cfg.image_size // cfg.patch_size) ** 2,
        tie_word_embeddings=False,
    )


def build_demo_backbone(cfg: DemoBackboneConfig | None = None):
    """Fresh, randomly initialised demo model and processor (deterministic in ``cfg.seed``)."""
    cfg = cfg or DemoBackboneConfig()
    processor = build_demo_processor(cfg)
    config = build_demo_config(cfg, processor.tokenizer)
    config._attn_implementation = "sdpa"
    fork = torch.random.fork_rng()  # keep the caller's global RNG untouched
    with fork:
        torch.manual_seed(cfg.seed)
        model = LlavaForConditionalGeneration(config)
    model.eval()
    return model, processor


def save_demo_backbone(out_dir: str | Path, cfg: DemoBackboneConfig | None = None, model=None, processor=None) -> Path:
    cfg = cfg or DemoBackboneConfig()
    if model is None or processor is None:
        model, processor = build_demo_backbone(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    (out / "demo_backbone.json").write_text(json.dumps(asdict(cfg), indent=2))
    return out

"""Tiny *random* configs of every supported architecture, built offline in well under a second.

Used by the tests (segments, masks, LoRA, save/load, capture on real layouts) and by
the benchmarks (a mid-size random LLaVA).  Nothing here is downloaded.
"""

from __future__ import annotations

import torch

from livr_viz.core.processors import QwenVLImageProcessor
from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_config, build_demo_processor
from livr_viz.demo.tokenizer import build_bpe_tokenizer

QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}{{ '\\n' }}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant{{ '\\n' }}{% endif %}"
)
IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


# the language model of the Qwen2-VL, Qwen2.5-VL and Idefics3 builders
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, max_position_embeddings=4096)
TINY_TEXT |= dict(num_attention_heads=4, num_key_value_heads=2)  # grouped-query attention: 4 heads over 2


def _seeded(cls, config, seed: int):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = cls(config)
    return model.eval()


def tiny_llava(
    seed: int = 0,
    image_size: int = 32,
    patch_size: int = 8,
    text_hidden: int = 64,
    text_layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    max_positions: int = 8192,
):
    """LLaVA 1.5-style: CLIP vision tower with CLS, Llama LM with GQA."""
    from transformers import LlavaForConditionalGeneration

    cfg = DemoBackboneConfig(
        image_size=image_size,
        patch_size=patch_size,
        vision_hidden=32,
        vision_layers=2,
        vision_heads=2,
        text_hidden=text_hidden,
        text_layers=text_layers,
        text_heads=heads,
        text_intermediate=text_hidden * 2,
        vocab_size=400,
        max_positions=max_positions,
    )
    processor = build_demo_processor(cfg)
    config = build_demo_config(cfg, processor.tokenizer)
    config.text_config.num_key_value_heads = kv_heads
    config._attn_implementation = "sdpa"
    return _seeded(LlavaForConditionalGeneration, config, seed), processor


def tiny_qwen2_vl(seed: int = 0, version: str = "2"):
    """Qwen2-VL (version "2") or Qwen2.5-VL ("2.5"): merged 2x2 patches, dynamic grid, M-RoPE."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    specials = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    tokenizer = build_bpe_tokenizer(400, extra_special_tokens=specials, chat_template=QWEN_TEMPLATE, bos_token=None)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=28 * 28 * 4, max_pixels=28 * 28 * 16, patch_size=14, temporal_patch_size=2, merge_size=2
    )
    processor = QwenVLImageProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=QWEN_TEMPLATE)
    ids = {
        k: tokenizer.convert_tokens_to_ids(v)
        for k, v in dict(
            image_token_id="<|image_pad|>",
            video_token_id="<|video_pad|>",
            vision_start_token_id="<|vision_start|>",
            vision_end_token_id="<|vision_end|>",
        ).items()
    }
    text = dict(
        vocab_size=len(tokenizer),
        **TINY_TEXT,
        rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0},
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
    )
    tower = dict(depth=2, num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)  # both versions
    if version == "2":
        vision = dict(tower, embed_dim=32, hidden_size=64, mlp_ratio=2, in_chans=3)
        config = Qwen2VLConfig(text_config=text, vision_config=vision, **ids)
        cls = Qwen2VLForConditionalGeneration
    else:
        vision = dict(tower, hidden_size=32, out_hidden_size=64, intermediate_size=64, in_channels=3)
        vision.update(window_size=56, fullatt_block_indexes=[1])  # windowed attention; block 1 attends globally
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)
        cls = Qwen2_5_VLForConditionalGeneration
    config._attn_implementation = "sdpa"
    return _seeded(cls, config, seed), processor


def tiny_idefics3(seed: int = 0):
    """Idefics3 / SmolVLM: SigLIP-style tower, pixel-shuffle connector, <image> runs framed by special tokens."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    rows = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    specials = ("<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", "<|im_start|>", *rows)
    tokenizer = build_bpe_tokenizer(600, extra_special_tokens=specials, chat_template=IDEFICS3_TEMPLATE)
    image_size, patch, scale = 32, 8, 2
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}
    )
    seq_len = (image_size // patch) ** 2 // scale**2
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=seq_len, chat_template=IDEFICS3_TEMPLATE
    )
    config = Idefics3Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
        ),
        text_config=dict(
            model_type="llama", vocab_size=len(tokenizer), **TINY_TEXT, pad_token_id=tokenizer.pad_token_id
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "sdpa"
    return _seeded(Idefics3ForConditionalGeneration, config, seed), processor


TINY_BUILDERS = {
    "llava": tiny_llava,
    "qwen2_vl": lambda seed=0: tiny_qwen2_vl(seed, "2"),
    "qwen2_5_vl": lambda seed=0: tiny_qwen2_vl(seed, "2.5"),
    "idefics3": tiny_idefics3,
}

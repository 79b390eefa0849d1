"""Processors that work without torchvision.

Qwen2-VL's stock processor requires a video processor, and transformers' video
processors need torchvision, which has no CPU build on our machines.  LIVR feeds
still images only, so :class:`QwenVLImageProcessor` is the stock Qwen2-VL processor
with the video slot removed (same text expansion, same ``mm_token_type_ids``).
"""

from __future__ import annotations

from pathlib import Path

from transformers import ProcessorMixin
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

from livr_viz.core.errors import LIVRError


class QwenVLImageProcessor(Qwen2VLProcessor):
    """Qwen2-VL / Qwen2.5-VL processor for images only (no torchvision needed)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.image_token
        )
        self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(
            self.video_token
        )
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    def __call__(self, images=None, text=None, videos=None, **kwargs):
        if videos is not None:
            raise LIVRError("video input is not supported by livr-viz")
        return super().__call__(images=images, text=text, **kwargs)


def load_qwen_processor(ref: str, trust_remote_code: bool = False) -> QwenVLImageProcessor:
    """Build the image-only Qwen processor from a local path or hub id (tokenizer, image processor, template)."""
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(ref, trust_remote_code=trust_remote_code)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(ref)
    template = getattr(tokenizer, "chat_template", None)
    try:
        from transformers.utils import cached_file

        path = cached_file(ref, "chat_template.jinja", _raise_exceptions_for_missing_entries=False)
        if path:
            template = Path(path).read_text(encoding="utf-8")
    except OSError:
        pass
    return QwenVLImageProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)

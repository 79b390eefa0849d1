"""The spatial reader: a convolutional vision tower with a few global attention layers, for the demo backbone.

The demo backbone's first tower was a CLIP-style ViT (12-px patches at 96 px). Trained alone on a task with every
parameter, it never learnt visual similarity or the correspondences, which a 1.5 M-parameter CNN learns from the
same pixels (docs/experiments/task-ceilings/). This tower keeps what the rest of livr-viz relies on — a square grid
of patch-aligned image tokens, one per ``patch_size`` × ``patch_size`` cell, in row-major order — and changes how
they are computed:

* **A convolutional stem.** A 3 × 3 convolution at full resolution, then three *patchify* downsamplings
  (non-overlapping ``s × s`` convolutions, strides multiplying to ``patch_size``) with residual 3 × 3 blocks
  between them. A non-overlapping downsampling keeps token (i, j) centred on patch (i, j); the 3 × 3 layers give each
  token a local receptive field of its patch plus a margin (:func:`stem_receptive_field`: 38 px for the demo's
  12-px patches, i.e. 13 px beyond the patch on each side).
* **Global mixing inside the tower.** ``num_hidden_layers`` pre-norm layers over all tokens (a learned position
  embedding; global attention, then an MLP across token positions, then a channel MLP), so late tokens can compare a
  reference panel with each candidate before the language model sees them. Residual connections keep each token
  anchored to its patch; how far a change in one patch spreads is measured by :mod:`livr_viz.methods.patch_spread`
  (tested in ``tests/test_spatial_reader.py``) and documented beside the heatmaps in the README.

It is registered with transformers' Auto classes under ``model_type = "livr_spatial_reader"`` when
:mod:`livr_viz.core` is imported, so a LLaVA config naming it loads with ``from_pretrained`` offline like any stock
tower. LLaVA reads ``hidden_states[vision_feature_layer]``; there is no CLS token (use the ``"full"`` feature
strategy and ``num_additional_image_tokens=0`` in the processor).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

MODEL_TYPE = "livr_spatial_reader"


class SpatialReaderConfig(PretrainedConfig):
    model_type = MODEL_TYPE
    base_config_key = "vision_config"

    def __init__(
        self,
        image_size: int = 96,
        patch_size: int = 12,
        num_channels: int = 3,
        stem_channels: tuple[int, ...] = (16, 32, 64),
        strides: tuple[int, ...] = (2, 2, 3),
        blocks: tuple[int, ...] = (1, 1),
        hidden_size: int = 128,
        num_hidden_layers: int = 3,
        num_attention_heads: int = 4,
        intermediate_size: int = 512,
        layer_norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        token_mixing: bool = True,
        first_norm: bool = True,
        overlap: int = 0,
        global_mlp: int = 0,
        global_mlp_channels: int = 16,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size, self.patch_size, self.num_channels = image_size, patch_size, num_channels
        self.stem_channels, self.strides, self.blocks = list(stem_channels), list(strides), list(blocks)
        self.hidden_size, self.num_hidden_layers = hidden_size, num_hidden_layers
        self.num_attention_heads, self.intermediate_size = num_attention_heads, intermediate_size
        self.layer_norm_eps, self.initializer_range = layer_norm_eps, initializer_range
        self.token_mixing = token_mixing
        self.first_norm, self.overlap = first_norm, overlap
        self.global_mlp, self.global_mlp_channels = global_mlp, global_mlp_channels
        self.validate()

    def validate(self) -> None:
        if math.prod(self.strides) != self.patch_size:
            raise ValueError(f"the strides {self.strides} must multiply to patch_size {self.patch_size}")
        if len(self.stem_channels) != len(self.strides) or len(self.blocks) != len(self.strides) - 1:
            raise ValueError("spatial reader: one stem width per downsampling and one block count between two")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be a multiple of patch_size {self.patch_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")


def stem_receptive_field(config: SpatialReaderConfig) -> int:
    """Side in pixels of the input region one token's stem output depends on (before global attention)."""
    rf, jump = 3, 1  # the full-resolution 3 x 3 convolution
    for i, s in enumerate(config.strides):
        k = s + 2 * config.overlap  # an s x s downsampling widened by `overlap` pixels on each side
        rf, jump = rf + (k - 1) * jump, jump * s
        if i < len(config.blocks):
            rf += 2 * 2 * jump * config.blocks[i]  # each residual block: two 3 x 3 convolutions at this scale
    return rf


class _ChannelNorm(nn.LayerNorm):
    """Layer norm over the channels of each pixel: unlike batch or group norm it uses no statistics pooled over
    the image, so a stem token depends only on the pixels of its receptive field."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = _ChannelNorm(channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = _ChannelNorm(channels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        h = self.conv1(F.gelu(self.norm1(x)))
        return x + self.conv2(F.gelu(self.norm2(h)))


class _Stem(nn.Module):
    def __init__(self, config: SpatialReaderConfig):
        super().__init__()
        widths = config.stem_channels
        self.conv_in = nn.Conv2d(config.num_channels, widths[0], 3, padding=1)
        self.downs = nn.ModuleList()
        self.stages = nn.ModuleList()
        c_in = widths[0]
        o = config.overlap
        for i, s in enumerate(config.strides):
            c_out = widths[i + 1] if i + 1 < len(widths) else config.hidden_size
            norm = _ChannelNorm(c_in) if i or config.first_norm else nn.Identity()
            down = nn.Conv2d(c_in, c_out, s + 2 * o, stride=s, padding=o)
            self.downs.append(nn.Sequential(norm, nn.GELU(), down))
            blocks = config.blocks[i] if i < len(config.blocks) else 0
            self.stages.append(nn.Sequential(*[_ResBlock(c_out) for _ in range(blocks)]))
            c_in = c_out

    def forward(self, pixel_values):
        x = self.conv_in(pixel_values)
        for down, stage in zip(self.downs, self.stages):
            x = stage(down(x))
        return x.flatten(2).transpose(1, 2)  # [B, rows * cols, D], row-major


class _Layer(nn.Module):
    """Global attention over the tokens, then (with ``token_mixing``) an MLP across token positions — fixed,
    position-specific weights, like the flattened head of the CNN that learns the panel tasks — then a channel MLP."""

    def __init__(self, config: SpatialReaderConfig):
        super().__init__()
        d, self.heads = config.hidden_size, config.num_attention_heads
        n = (config.image_size // config.patch_size) ** 2
        self.norm1 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mix = None
        if config.token_mixing:
            self.norm_mix = nn.LayerNorm(d, eps=config.layer_norm_eps)
            self.mix = nn.Sequential(nn.Linear(n, 4 * n), nn.GELU(), nn.Linear(4 * n, n))
        self.norm2 = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.mlp = nn.Sequential(
            nn.Linear(d, config.intermediate_size), nn.GELU(), nn.Linear(config.intermediate_size, d)
        )

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        if self.mix is not None:
            x = x + self.mix(self.norm_mix(x).transpose(1, 2)).transpose(1, 2)
        return x + self.mlp(self.norm2(x))


class _LeCunLinear(nn.Linear):
    """A linear layer initialised with std 1/sqrt(fan_in): at the tower's 0.02, the global MLP's four small layers in
    a row bury its branch (jigsaw stayed at chance for 500 steps, docs/experiments/spatial-reader/)."""


class _GlobalMLP(nn.Module):
    """One MLP over the whole grid at once, added back to every token: each token is squeezed to a few channels, the
    grid is flattened, a hidden layer of ``width`` units sees every position and channel together, and its output is
    unflattened and widened back. A hidden unit can compare features at two fixed places (a jigsaw piece's edge with
    the hole's border) in one step; attention and per-channel token mixing must learn to route them first, and on
    jigsaw they did not in 1,000 steps while a read-out with such a layer did (docs/experiments/spatial-reader/)."""

    def __init__(self, config: SpatialReaderConfig):
        super().__init__()
        n, c = (config.image_size // config.patch_size) ** 2, config.global_mlp_channels
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.down, self.up = _LeCunLinear(config.hidden_size, c), _LeCunLinear(c, config.hidden_size)
        self.mlp = nn.Sequential(
            _LeCunLinear(n * c, config.global_mlp), nn.GELU(), _LeCunLinear(config.global_mlp, n * c)
        )

    def forward(self, x):
        b, t, _ = x.shape
        h = self.mlp(self.down(self.norm(x)).reshape(b, -1)).reshape(b, t, -1)
        return x + self.up(h)


class SpatialReaderModel(PreTrainedModel):
    config_class = SpatialReaderConfig
    base_model_prefix = "spatial_reader"
    main_input_name = "pixel_values"
    input_modalities = "image"
    _supports_sdpa = True  # the tower's own attention is plain sdpa math; the LM's kernel choice is separate
    _no_split_modules = ["_Layer"]

    def __init__(self, config: SpatialReaderConfig):
        super().__init__(config)
        side = config.image_size // config.patch_size
        self.stem = _Stem(config)
        self.position_embedding = nn.Parameter(torch.zeros(1, side * side, config.hidden_size))
        self.layers = nn.ModuleList(_Layer(config) for _ in range(config.num_hidden_layers))
        self.global_mlp = _GlobalMLP(config) if config.global_mlp else None
        self.post_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=module.in_features**-0.5 if isinstance(module, _LeCunLinear) else std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, SpatialReaderModel):
            nn.init.normal_(module.position_embedding, std=std)

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        """``hidden_states`` always holds the stem's tokens and each layer's output (LLaVA reads one of them)."""
        dtype = self.position_embedding.dtype
        x = self.stem(pixel_values.to(dtype)) + self.position_embedding
        states = [x]
        for layer in self.layers:
            x = layer(x)
            states.append(x)
        if self.global_mlp is not None:  # counts as the last layer's output: LLaVA reads hidden_states[-1]
            x = self.global_mlp(x)
            states[-1] = x
        last = self.post_layernorm(x)
        return BaseModelOutputWithPooling(
            last_hidden_state=last, pooler_output=last.mean(1), hidden_states=tuple(states)
        )


def register() -> None:
    """Make ``model_type = "livr_spatial_reader"`` loadable by AutoConfig / AutoModel (idempotent)."""
    with contextlib.suppress(ValueError):  # already registered
        AutoConfig.register(MODEL_TYPE, SpatialReaderConfig)
    with contextlib.suppress(ValueError):
        AutoModel.register(SpatialReaderConfig, SpatialReaderModel)


register()

"""One config per concept, and the names every layer shares.

:class:`LIVRConfig` describes a LIVR model around its backbone (saved as ``livr_config.json``); the trainer's
:class:`~livr_viz.training.trainer.TrainConfig` holds one and adds only how to train. The names of variants,
stages, latent placements, answer formats and of every other choice a user makes by name (heatmap aggregations,
projections, attribution methods, ablations, precisions, task balance) are defined here once, import-light (no
torch), so the CLI's parser, the app's menus and the checks in the engine all read the same tuple; "must be one of"
checks go through :func:`check_one_of`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

from livr_viz.core.errors import LIVRError

VARIANTS: tuple[str, ...] = ("livr", "latents_only", "sft")  # LIVR; latents in Stage 2 only; plain LoRA
STAGES: tuple[str, ...] = ("full", "bottleneck")  # attention at a forward pass: causal, or the Stage-1 bottleneck
STAGES_BY_VARIANT = {"livr": ("bottleneck", "full"), "latents_only": ("full",), "sft": ("full",)}  # training order
LATENT_PLACEMENTS: tuple[str, ...] = ("end_of_prompt", "before_answer")
FINETUNES: tuple[str, ...] = ("lora", "full")  # LoRA on the language model (the paper), or every parameter
ANSWER_FORMATS: tuple[str, ...] = ("word", "letter")  # the synthetic suite's: marker word / number, or BLINK letters
# the attention conditions the latent-use read-outs run under (methods.latent_use; import-light here for CLI menus)
CONDITIONS: tuple[str, ...] = ("standard", "bottleneck", "blind", "removed", "bottleneck_blind")
LETTERS = "ABCDEFGH"  # BLINK's multiple-choice letters, (A), (B), ...: options of items that name none of their own
MAX_LATENTS = 512
TEST_SEED = 2026  # the synthetic test split's seed for reported numbers: never used in training or validation
# latent heatmaps: heads combined by mean / max within a layer, or attention rolled out across layers; then scaled per
# latent, over all latents, or not at all
AGGREGATIONS: tuple[str, ...] = ("mean", "max", "rollout")
NORMALISATIONS: tuple[str, ...] = ("per_latent", "global", "none")
PROJECTIONS: tuple[str, ...] = ("tsne", "umap", "pca")  # token maps: 2-D projections of hidden states
ATTRIBUTION_METHODS: tuple[str, ...] = ("integrated_gradients", "saliency")  # latent attribution (captum)
ABLATIONS: tuple[str, ...] = ("zero", "mean", "noise", "remove", "blind")  # how a latent is knocked out
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")  # training precision
TASK_BALANCES: tuple[str, ...] = ("none", "grad_norm")  # how a fine-tune weighs its tasks' gradients


def check_one_of(name: str, value, allowed, error: type[Exception] = LIVRError) -> None:
    """The one "must be one of" check: ``{name} must be one of a, b; got 'x'`` (``error``: a LIVRError subclass
    where the caller's kind of error matters, e.g. a DataError naming the file and line in ``name``)."""
    if value not in allowed:
        raise error(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _setting(default, **options):
    """A field the user chooses when training (``TrainConfig(variant=..., n_latents=...)`` sets it by name); fields
    without this mark are filled in (family, latent ids) or recorded (trained steps) by the code."""
    return field(default=default, metadata={"setting": True}, **options)


def model_settings() -> tuple[str, ...]:
    """The names of :class:`LIVRConfig`'s settings (its fields marked with :func:`_setting`), in field order."""
    return tuple(f.name for f in fields(LIVRConfig) if f.metadata.get("setting"))


@dataclass
class LIVRConfig:
    """Everything needed to rebuild a LIVR model around its backbone. Saved as ``livr_config.json``."""

    variant: str = _setting("livr")  # livr (Stage 1 + 2) | latents_only (Stage 2 only) | sft (no latents)
    n_latents: int = _setting(16)  # K latent tokens; forced to 0 for sft
    stage1_fraction: float = _setting(0.4)  # share of training steps in the bottleneck stage ("4/6"); 0 unless livr
    backbone: str = "demo-base"  # demo name, local path or hub id of the base VLM
    family: str = ""  # filled in from the backbone's model_type
    lora_r: int = _setting(16)  # LoRA rank (paper: 16)
    lora_alpha: int = _setting(32)  # LoRA alpha (paper: 32)
    lora_dropout: float = _setting(0.05)  # LoRA dropout (paper: 0.05)
    # "lora" (the paper): LoRA on the language model + the latent rows, saved as an adapter on ``backbone``;
    # "full": every parameter trained (vision tower, projector, language model, all embedding rows), saved as a whole
    # model beside the config (a departure for the 3 M-parameter demo backbone, trained from scratch: see
    # docs/experiments/full-finetune/)
    finetune: str = "lora"
    latent_init_seed: int = 0  # seed of the latent-row initialisation
    latent_token_ids: list[int] = field(default_factory=list)  # filled in when latents are added
    # where the K latents go: "end_of_prompt" (the paper's Q' = Q + L) = at the end of the user turn, before the chat
    # template's assistant marker, so the rows that predict the answer are template text rows, blocked from the image
    # in Stage 1; "before_answer" = after the assistant marker, so the last latent's row predicts the first answer
    # token and may see the image in Stage 1 (a documented contrast: it makes the bottleneck vacuous for one-token
    # answers)
    latent_placement: str = _setting("end_of_prompt")
    # how the model was taught to answer the synthetic suite: "word" (marker colour / position / number) or "letter"
    # (BLINK's drawn letters); evaluation and the app build their questions in this format
    answer_format: str = _setting("word")
    trained_steps: int = 0  # optimizer steps this adapter has seen (0 = untrained)
    training: dict = field(default_factory=dict)  # free-form record of how it was trained

    def __post_init__(self):
        check_one_of("variant", self.variant, VARIANTS)
        if self.variant == "sft":
            self.n_latents = 0
            self.stage1_fraction = 0.0
        elif not isinstance(self.n_latents, int) or not 1 <= self.n_latents <= MAX_LATENTS:
            raise LIVRError(
                f"n_latents (K) must be an integer in 1..{MAX_LATENTS} for {self.variant}; got {self.n_latents!r}"
            )
        if self.variant == "latents_only":
            self.stage1_fraction = 0.0
        if not 0.0 <= self.stage1_fraction <= 1.0:
            raise LIVRError(f"stage1_fraction must be in [0, 1]; got {self.stage1_fraction}")
        if self.lora_r < 1:
            raise LIVRError(f"lora_r must be >= 1; got {self.lora_r}")
        check_one_of("answer_format", self.answer_format, ANSWER_FORMATS)
        check_one_of("finetune", self.finetune, FINETUNES)
        check_one_of("latent_placement", self.latent_placement, LATENT_PLACEMENTS)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> LIVRConfig:
        data = json.loads(text)
        # models saved before these fields existed were trained with the letter format, latents before the answer
        data.setdefault("answer_format", "letter")
        data.setdefault("latent_placement", "before_answer")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

"""The LIVR wrapper: a Hugging Face VLM + processor, K latent tokens, the stage mask, LoRA.

Like ``PeftModel`` wraps a base model, :class:`LIVRModel` wraps a VLM and adds only
what is ours: latent tokens inserted after the prompt (``image · prompt · template ·
latents · answer``), segment labels, the Stage 1 ``bottleneck`` mask and a LoRA
adapter on the language model with the latent embedding rows trainable.

Latent initialisation (documented choice; the paper says only "random"): row i is
``mean(E) + std(E) * z_i`` with ``E`` the existing input-embedding rows, ``std``
per dimension and ``z_i ~ N(0, I)`` drawn from a ``torch.Generator`` seeded with
``LIVRConfig.latent_init_seed``.  Latents therefore start at the scale of real
tokens and distinct from each other.  Output (lm_head) rows of latent ids are set
to the mean output row; latents are never predicted (they are excluded from
generation).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from livr_viz.core.capture import install_capture
from livr_viz.core.config import (  # noqa: F401 - the config is part of the model's API
    ANSWER_FORMATS,
    LATENT_PLACEMENTS,
    MAX_LATENTS,
    STAGES,
    VARIANTS,
    LIVRConfig,
    check_one_of,
)
from livr_viz.core.errors import LIVRError
from livr_viz.core.families import Family, family_for
from livr_viz.core.fsutil import fresh_tmp_dir, previous_copy, replace_dir
from livr_viz.core.images import load_image
from livr_viz.core.masks import attention_mask_4d
from livr_viz.core.refs import known_names, resolve_reference
from livr_viz.core.segments import Segment, segment_ids
from livr_viz.core.spatial_reader import register as _register_spatial_reader

_register_spatial_reader()  # the demo backbone's convolutional tower loads by its model_type like a stock one
CONFIG_NAME = "livr_config.json"
LATENTS_NAME = "latents.safetensors"
FULL_MODEL_DIR = "model"  # a full-parameter fine-tune's whole model, beside its livr_config.json
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass
class LIVRBatch:
    """Model inputs plus what LIVR knows about each position.

    ``inputs``: processor outputs (``input_ids`` [B, T], ``pixel_values``, …) without the 2D mask.
    ``padding_mask``: [B, T] 1 = real token.  ``segments``: [B, T] :class:`Segment` values.
    ``answer_start``: [B] first answer position (where the answer begins or would begin).
    ``labels``: [B, T] answer token ids, -100 elsewhere (None without answers).
    """

    inputs: dict[str, torch.Tensor]
    padding_mask: torch.Tensor
    segments: torch.Tensor
    answer_start: torch.Tensor
    labels: torch.Tensor | None = None
    prompts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # free-form per-batch info (tasks, answers, ids) set by collators

    @property
    def input_ids(self) -> torch.Tensor:
        return self.inputs["input_ids"]

    def to(self, device) -> LIVRBatch:
        move = lambda t: t.to(device) if isinstance(t, torch.Tensor) else t
        return LIVRBatch(
            {k: move(v) for k, v in self.inputs.items()},
            move(self.padding_mask),
            move(self.segments),
            move(self.answer_start),
            move(self.labels),
            self.prompts,
            self.notes,
            self.meta,
        )


def _refuse_pickle(path: Path, allow_pickle: bool) -> None:
    if allow_pickle or not path.is_dir():
        return
    has_safetensors = any(path.glob("*.safetensors"))
    pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
    if pickles and not has_safetensors:
        raise LIVRError(
            f"{path} holds only pickle-based weights ({', '.join(sorted(pickles))}); pickle can run arbitrary code. "
            "Convert them to safetensors, or pass --allow-pickle (allow_pickle=True) if you trust the source"
        )


def load_backbone(
    name: str,
    attn_implementation: str = "sdpa",
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    dtype: torch.dtype = torch.float32,
):
    """Load an HF VLM and its processor from a demo name, local path or hub id, with clear errors."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    ref = resolve_reference(name)
    path = Path(ref).expanduser()
    looks_like_path = path.exists() or ref.startswith((".", "/", "~")) or ref.count("/") > 1
    if looks_like_path and not path.exists():
        previous = previous_copy(path)
        if previous.is_dir():
            raise LIVRError(
                f"model path not found: {ref}; a save into it was interrupted and left the previous "
                f"copy in {previous}: rename that back to {path.name} to use it"
            )
        raise LIVRError(f"model path not found: {ref}")
    if not looks_like_path and "/" not in ref:
        raise LIVRError(
            f"unknown model {name!r}: not a bundled name ({', '.join(known_names()) or 'none registered'}), "
            "not an existing path, and not a hub id of the form org/name"
        )
    if path.exists():
        if not (path / "config.json").is_file():
            raise LIVRError(f"{ref} is not a model directory (no config.json)")
        _refuse_pickle(path, allow_pickle)
    if not path.exists() and not _hub_available(ref):
        raise LIVRError(
            f"{ref!r} is not a local path and the Hugging Face Hub is unreachable (offline). On a connected machine "
            f"run `huggingface-cli download {ref} --local-dir DIR` and pass DIR instead"
        )
    kwargs = dict(trust_remote_code=trust_remote_code, dtype=dtype, attn_implementation=attn_implementation)
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    try:
        config = AutoConfig.from_pretrained(ref, trust_remote_code=trust_remote_code)
        family = family_for(config)
        processor = family.load_processor(ref, trust_remote_code)
        model = AutoModelForImageTextToText.from_pretrained(ref, **kwargs)
    except LIVRError:
        raise
    except OSError as exc:
        text = str(exc)
        if not path.exists():
            raise LIVRError(
                f"could not load {ref!r} from the Hugging Face Hub (offline or unknown id). On a connected machine run "
                f"`huggingface-cli download {ref} --local-dir DIR`, then pass DIR (or set HF_HUB_OFFLINE=1 once it is "
                "cached)"
            ) from None
        raise LIVRError(
            f"could not load model from {ref}: {text.splitlines()[0] if text else type(exc).__name__}"
        ) from None
    except ValueError as exc:
        message = str(exc).splitlines()[0]
        if "trust_remote_code" in message:
            raise LIVRError(
                f"{ref} needs custom code from its repository; pass --trust-remote-code (trust_remote_code=True) "
                "only if you trust its authors"
            ) from None
        raise LIVRError(f"could not load model from {ref}: {message}") from None
    model.eval()
    return model, processor


def _hub_available(ref: str, timeout: float = 3.0) -> bool:
    """True if ``ref`` may be fetched: cached while HF_HUB_OFFLINE=1, or huggingface.co answers quickly."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        try:
            from huggingface_hub import try_to_load_from_cache

            return isinstance(try_to_load_from_cache(ref, "config.json"), str)
        except Exception:  # noqa: BLE001 - any cache problem means "not available"
            return False
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


class LIVRModel:
    """A VLM with LIVR latents, stage masks and a LoRA adapter. See module docstring."""

    def __init__(self, model, processor, config: LIVRConfig, family: Family):
        self.model = model  # a peft PeftModel around the HF VLM
        self.processor = processor
        self.config = config
        self.family = family
        self.tokenizer = processor.tokenizer
        # every encode sets the fast tokenizer's padding state (and build_inputs its padding side), which all
        # requests on this model share: one encode or decode at a time (the forward itself needs no lock)
        self.text_lock = threading.RLock()
        install_capture(self.base_model)  # same numerics; lets LatentAttention record rows on demand
        self.image_token_id = family.image_token_id(self.base_model.config, processor)
        if self.image_token_id >= self.base_model.config.get_text_config().vocab_size:
            raise LIVRError("the model's image token id is outside its vocabulary")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_backbone(
        cls,
        backbone: str = "demo-base",
        variant: str = "livr",
        n_latents: int = 16,
        attn_implementation: str = "sdpa",
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
        model=None,
        processor=None,
        lora: bool = True,
        config: LIVRConfig | None = None,
        freeze_vision: bool = False,
        **config_kwargs,
    ) -> LIVRModel:
        """Fresh (untrained) LIVR model: add K latents, init their rows, attach LoRA.

        Pass ``model``/``processor`` to wrap objects already in memory (tests, notebooks).
        ``lora=False`` keeps the raw model with every parameter trainable (``finetune="full"``), the vision tower
        too unless ``freeze_vision`` (LLaVA's recipe): the full-parameter pretraining of the demo backbone uses it
        (variant ``sft``), and so do full-parameter fine-tunes of every variant.
        ``config`` gives every model setting at once (the trainer passes its ``TrainConfig.model``); otherwise
        ``variant``, ``n_latents`` and ``config_kwargs`` do.
        """
        if config is not None:
            config = replace(config, backbone=backbone, family="", latent_token_ids=[])
        else:
            config = LIVRConfig(variant=variant, n_latents=n_latents, backbone=backbone, **config_kwargs)
        config.finetune = "lora" if lora else "full"
        if model is None or processor is None:
            model, processor = load_backbone(backbone, attn_implementation, allow_pickle, trust_remote_code)
        family = family_for(model.config)
        config.family = family.name
        family.image_token_id(model.config, processor)  # fail early, with a clear message
        if config.n_latents:
            config.latent_token_ids = _add_latent_tokens(model, processor, config)
        if not lora:
            for p in model.parameters():
                p.requires_grad_(True)
            if freeze_vision:
                for p in family.vision_encoder_parameters(model):
                    p.requires_grad_(False)
            return cls(model, processor, config, family)
        return cls(_attach_lora(model, family, config), processor, config, family)

    @classmethod
    def load(
        cls,
        path: str | Path,
        attn_implementation: str = "sdpa",
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
    ) -> LIVRModel:
        """Load a directory written by :meth:`save` (base reference + adapter + latent rows + config)."""
        from peft import set_peft_model_state_dict

        path = Path(resolve_reference(str(path)))
        cfg_file = path / CONFIG_NAME
        if not cfg_file.is_file():
            raise LIVRError(f"{path} is not a LIVR checkpoint (no {CONFIG_NAME})")
        config = LIVRConfig.from_json(cfg_file.read_text())
        saved_ids = list(config.latent_token_ids)
        if config.finetune == "full":
            return cls._load_full(path, config, attn_implementation)
        model, processor = load_backbone(config.backbone, attn_implementation, allow_pickle, trust_remote_code)
        family = family_for(model.config)
        if config.n_latents:
            ids = _add_latent_tokens(model, processor, config)
            if ids != saved_ids:
                raise LIVRError(
                    f"{path}: latent token ids {saved_ids[:3]}… do not match the backbone's ({ids[:3]}…); "
                    "was the checkpoint trained on a different backbone or tokenizer?"
                )
        peft_model = _attach_lora(model, family, config)
        adapter = path / "adapter_model.safetensors"
        if not adapter.is_file():
            raise LIVRError(f"{path}: adapter_model.safetensors is missing")
        result = set_peft_model_state_dict(peft_model, load_file(str(adapter)))
        # a tied lm_head shares the embedding's token delta, so peft does not save it separately
        missing_keys = result.missing_keys  # type: ignore[attr-defined]  # peft's annotation is a bare namedtuple
        missing = [k for k in missing_keys if "lora_" in k or ("trainable_tokens" in k and "lm_head" not in k)]
        if missing:
            raise LIVRError(f"{path}: adapter is missing {len(missing)} tensors (e.g. {missing[0]})")
        peft_model.eval()
        return cls(peft_model, processor, config, family)

    @classmethod
    def _load_full(cls, path: Path, config: LIVRConfig, attn_implementation: str) -> LIVRModel:
        """A full-parameter fine-tune: the whole model (latent rows and tokens included) lies in ``path/model``."""
        if not (path / FULL_MODEL_DIR / "config.json").is_file():
            raise LIVRError(
                f"{path}: a full-parameter checkpoint needs its model in {FULL_MODEL_DIR}/, which is missing"
            )
        model, processor = load_backbone(str(path / FULL_MODEL_DIR), attn_implementation)
        family = family_for(model.config)
        ids = processor.tokenizer.convert_tokens_to_ids([latent_token(i) for i in range(config.n_latents)])
        unknown = processor.tokenizer.unk_token_id
        if list(ids) != list(config.latent_token_ids) or (unknown is not None and unknown in ids):
            raise LIVRError(f"{path}: the saved model's latent tokens do not match its {CONFIG_NAME}")
        model.eval()
        return cls(model, processor, config, family)

    def save(self, path: str | Path) -> Path:
        """Write adapter (safetensors), latent rows, livr_config.json. Written to a temp dir, then renamed.
        A full-parameter fine-tune writes its whole model (safetensors) to ``model/`` instead of an adapter."""
        from peft import get_peft_model_state_dict

        path = Path(path)
        tmp = fresh_tmp_dir(path)
        if self.config.finetune == "full":
            self.model.save_pretrained(tmp / FULL_MODEL_DIR, safe_serialization=True)
            self.processor.save_pretrained(tmp / FULL_MODEL_DIR)
        else:
            state = {k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(self.model).items()}
            save_file(state, str(tmp / "adapter_model.safetensors"))
            self.model.peft_config["default"].save_pretrained(str(tmp))
        if self.config.n_latents:
            save_file({"latent_embeddings": self.latent_embeddings().contiguous().cpu()}, str(tmp / LATENTS_NAME))
        (tmp / CONFIG_NAME).write_text(self.config.to_json())
        return replace_dir(tmp, path)

    # ------------------------------------------------------------------ properties
    @property
    def base_model(self):
        """The HF VLM (with LoRA layers injected)."""
        return self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model

    @property
    def latent_token_ids(self) -> list[int]:
        return list(self.config.latent_token_ids)

    @property
    def latent_tokens(self) -> list[str]:
        return [latent_token(i) for i in range(self.config.n_latents)]

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_positions(self) -> int:
        text_cfg = self.base_model.config.get_text_config()
        return int(getattr(text_cfg, "max_position_embeddings", 0) or 1 << 20)

    def latent_embeddings(self) -> torch.Tensor:
        """``[K, D]`` current input embeddings of the latent tokens (including trained deltas)."""
        ids = torch.tensor(self.latent_token_ids, dtype=torch.long, device=self.device)
        with torch.no_grad():
            return self.model.get_input_embeddings()(ids).detach().clone()

    def param_counts(self) -> dict[str, int]:
        base = self.base_model
        total = sum(p.numel() for n, p in base.named_parameters() if not _is_adapter_name(n))
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        lm = self.family.language_model(base)
        vision = sum(
            p.numel()
            for n, p in base.named_parameters()
            if ("vision" in n or "visual" in n) and not _is_adapter_name(n)
        )
        return {
            "total": total,
            "trainable": trainable,
            "language_model": sum(p.numel() for n, p in lm.named_parameters() if not _is_adapter_name(n)),
            "vision": vision,
        }

    # ------------------------------------------------------------------ inputs
    def sanitize_prompt(self, prompt: str) -> tuple[str, list[str]]:
        """Remove literal special tokens (latents, image placeholders, BOS/EOS…) from user text.

        A prompt typed as ``"<latent_3>"`` or ``"<image>"`` must not inject latents or image
        slots; such strings are deleted and a note says so.
        """
        if not isinstance(prompt, str):
            raise LIVRError(f"prompt must be a string, got {type(prompt).__name__}")
        specials = set(self.tokenizer.all_special_tokens) | set(self.latent_tokens) | {latent_token(0)[:-2]}
        image_token = getattr(self.processor, "image_token", None)
        if image_token:
            specials.add(image_token)
        notes = []
        for tok in sorted(specials, key=len, reverse=True):
            if tok and tok in prompt:
                prompt = prompt.replace(tok, "")
                notes.append(f"removed literal special token {tok!r} from the prompt")
        return prompt, notes

    def prefix_text(self, prompt: str) -> str:
        """Chat-templated text for one image + prompt, with the latent tokens (if any) where the config puts them:
        at the very end (``before_answer``) or at the end of the user's text (``end_of_prompt``)."""
        latents = "".join(self.latent_tokens)
        in_prompt = self.config.latent_placement == "end_of_prompt"
        user_text = prompt + latents if in_prompt else prompt
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": user_text}]}]
        template = getattr(self.processor, "chat_template", None) or getattr(self.tokenizer, "chat_template", None)
        if template:
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            text = f"{self.processor.image_token}\n{user_text}\n"
        return text if in_prompt else text + latents

    def build_inputs(self, images: Sequence, prompts: Sequence[str], answers: Sequence[str] | None = None) -> LIVRBatch:
        """Processor inputs + segments for a batch of (image, prompt[, answer]); right padding."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(images, (list, tuple)):
            images = [images]
        if len(images) != len(prompts):
            raise LIVRError(f"got {len(images)} images but {len(prompts)} prompts")
        if answers is not None and len(answers) != len(prompts):
            raise LIVRError(f"got {len(answers)} answers for {len(prompts)} prompts")
        pil_images = [load_image(im) for im in images]
        notes: list[str] = []
        clean = []
        for p in prompts:
            text, n = self.sanitize_prompt(p)
            clean.append(normalize_prompt(text))
            notes += n
        texts = [self.prefix_text(p) for p in clean]
        answer_ids: list[list[int]] = []
        with self.text_lock:
            if answers is not None:
                for a in answers:
                    ids = self.tokenizer(str(a), add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
                    answer_ids.append(ids)
                texts = [t + str(a) + self.tokenizer.eos_token for t, a in zip(texts, answers)]
            saved_side = self.tokenizer.padding_side
            self.tokenizer.padding_side = "right"
            try:
                enc = self.processor(
                    text=texts, images=self.family.processor_images(pil_images), return_tensors="pt", padding=True
                )
            except LIVRError:
                raise
            except Exception as exc:  # processors raise many types for bad inputs
                raise LIVRError(f"the processor could not build inputs: {str(exc).splitlines()[0]}") from None
            finally:
                self.tokenizer.padding_side = saved_side
        inputs = {k: v for k, v in enc.items() if isinstance(v, torch.Tensor)}
        padding_mask = inputs.pop("attention_mask")
        input_ids = inputs["input_ids"]
        if input_ids.shape[1] > self.max_positions:
            raise LIVRError(
                f"input is {input_ids.shape[1]} tokens; this model accepts at most {self.max_positions} "
                "(shorten the prompt)"
            )
        n_real = padding_mask.sum(1)
        if answers is not None:
            answer_start = n_real - torch.tensor([len(a) for a in answer_ids])
            labels = torch.full_like(input_ids, -100)
            for b, ids in enumerate(answer_ids):
                s = int(answer_start[b])
                if input_ids[b, s : s + len(ids)].tolist() != ids:
                    raise LIVRError(
                        f"answer {answers[b]!r} does not tokenize on its own after the prompt; "
                        "this tokenizer merges it with the template"
                    )
                labels[b, s : s + len(ids)] = torch.tensor(ids)
        else:
            answer_start, labels = n_real.clone(), None
        segs = segment_ids(
            input_ids,
            padding_mask,
            self.image_token_id,
            self.latent_token_ids,
            answer_start if answers is not None else None,
        )
        n_lat = (segs == int(Segment.LATENT)).sum(1)
        if (n_lat != self.config.n_latents).any():
            raise LIVRError(f"expected {self.config.n_latents} latent tokens per row, found {n_lat.tolist()}")
        # on the model's device (a no-op on the CPU; a GPU run's batches follow its model)
        return LIVRBatch(inputs, padding_mask, segs, answer_start.long(), labels, list(clean), notes).to(self.device)

    # ------------------------------------------------------------------ forward
    def model_kwargs(
        self, batch: LIVRBatch, stage: str = "full", block_latent_image: bool = False, image_bias: float = 0.0
    ) -> dict[str, Any]:
        """Keyword arguments for the HF forward: inputs + float 4D mask + explicit position ids (``image_bias``: see
        :func:`~livr_viz.core.masks.attention_mask_4d`)."""
        check_one_of("stage", stage, STAGES)
        kwargs = dict(batch.inputs)
        kwargs["attention_mask"] = attention_mask_4d(batch.segments, stage, block_latent_image, self.dtype, image_bias)
        kwargs["position_ids"] = self.family.position_ids(self.base_model, batch.inputs, batch.padding_mask)
        return kwargs

    def forward(self, batch: LIVRBatch, stage: str = "full", block_latent_image: bool = False, **kwargs):
        """HF forward with the stage mask; extra kwargs (output_hidden_states, …) pass through untouched."""
        return self.model(**self.model_kwargs(batch, stage, block_latent_image), **kwargs)

    __call__ = forward

    def hidden_states(
        self, batch: LIVRBatch, stage: str = "full", block_latent_image: bool = False, image_bias: float = 0.0, **kwargs
    ):
        """Output of the inner VLM (no lm_head): ``last_hidden_state`` [B, T, D] and, on request, all layers."""
        inner = self.base_model.model
        return inner(**self.model_kwargs(batch, stage, block_latent_image, image_bias), **kwargs)

    def answer_logits(self, batch: LIVRBatch, stage: str = "full", block_latent_image: bool = False) -> torch.Tensor:
        """``[B, V]`` logits predicting the first answer token (read at ``answer_start - 1``)."""
        hidden = self.hidden_states(batch, stage, block_latent_image).last_hidden_state  # [B, T, D]
        return self.logits_at_answer(hidden, batch.answer_start)

    def logits_at_answer(self, hidden: torch.Tensor, answer_start: torch.Tensor) -> torch.Tensor:
        """``[B, V]`` from final hidden states ``[B, T, D]``: lm_head at ``answer_start - 1``, latents excluded."""
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        logits = self.base_model.lm_head(hidden[rows, answer_start - 1])  # [B, V]
        if self.latent_token_ids:
            logits[:, self.latent_token_ids] = torch.finfo(logits.dtype).min
        return logits

    def loss(self, batch: LIVRBatch, stage: str = "full", image_bias: float = 0.0) -> torch.Tensor:
        """Mean next-token NLL over answer tokens only (the paper's loss, both stages; ``image_bias`` < 0: Stage 2
        still opening, see :func:`~livr_viz.core.masks.attention_mask_4d`)."""
        if batch.labels is None:
            raise LIVRError("loss needs a batch built with answers")
        hidden = self.hidden_states(batch, stage, image_bias=image_bias).last_hidden_state  # [B, T, D]
        targets = batch.labels[:, 1:]  # position t predicts token t+1
        keep = targets != -100
        logits = self.base_model.lm_head(hidden[:, :-1][keep])  # [N, V]
        return torch.nn.functional.cross_entropy(logits.float(), targets[keep])

    # ------------------------------------------------------------------ options
    # Options are scored as lm-evaluation-harness scores multiple choice: each option is a continuation of the
    # prompt, tokenized in context (the templated prompt + the template's join + the option, keeping the tokens
    # past the prompt's own), and scored by its tokens' log-likelihood. Probabilities are a softmax over the options
    # of the per-token mean log-probability (the geometric mean token probability, renormalised), so options of
    # different token lengths compare fairly; where every option is one token this is exactly the softmax of the
    # answer row's logits over the options' tokens, computed that way (the demo models' numbers).

    def answer_join(self) -> str:
        """The text the chat template puts between its generation prompt and the assistant's words: "" for the demo
        and Qwen templates (``ASSISTANT:left``, ``assistant\\nleft``), " " for LLaVA-1.5's (``ASSISTANT: left``).
        Note: training (:meth:`build_inputs` with answers) writes the answer straight after the prompt, which agrees
        with this only where the join is "" (the demo and Qwen templates)."""
        if not hasattr(self, "_answer_join"):
            self._answer_join = _template_join(self.processor, self.tokenizer)
        return self._answer_join

    def _encode(self, text: str) -> list[int]:
        with self.text_lock:
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def option_continuations(self, prompt: str, choices: Sequence[str]) -> tuple[int, list[list[int]]]:
        """``(last prompt token id, [token ids of each option in context])`` for one (already cleaned) prompt.

        The continuation is what tokenizing prompt + join + option adds past the prompt's tokens, so a leading space
        or a merge the tokenizer makes after the template's last token is scored, not the option tokenized alone.
        """
        if not len(choices):
            raise LIVRError("no options to score")
        context = self.prefix_text(prompt)
        context_ids = self._encode(context)
        join, continuations = self.answer_join(), []
        for c in choices:
            if not str(c).strip():
                raise LIVRError(f"option {c!r} is empty")
            whole = self._encode(context + join + str(c))
            if whole[: len(context_ids)] != context_ids or len(whole) == len(context_ids):
                raise LIVRError(
                    f"option {c!r} merges with the end of the prompt's template when tokenized; it cannot "
                    "be scored as a continuation of the prompt"
                )
            continuations.append(whole[len(context_ids) :])
        for i, a in enumerate(continuations):
            for j in range(i):
                if continuations[j] == a:
                    raise LIVRError(
                        f"options {choices[j]!r} and {choices[i]!r} are the same tokens in context; they "
                        "cannot be scored apart"
                    )
        return context_ids[-1], continuations

    def choice_token_ids(self, choices: Sequence[str], prompt: str = "") -> list[int]:
        """One token id per option, each option tokenized in context after ``prompt``'s template (the tail of the
        template, not the prompt, decides it; any prompt gives the same ids under the shipped templates). For the
        read-outs that compare one logit per option (ablation, attribution, diagnostics); options that span several
        tokens in context are refused with a clear error — :meth:`choice_probs` scores those."""
        _, continuations = self.option_continuations(self.clean_prompt(prompt), choices)
        long = [c for c, ids in zip(choices, continuations) if len(ids) > 1]
        if long:
            shown = ", ".join(f"{c!r} ({len(ids)} tokens)" for c, ids in zip(choices, continuations) if len(ids) > 1)
            raise LIVRError(
                f"options span several tokens in context: {shown}; this read-out compares one logit per "
                "option (the answer's probabilities and accuracy score whole options)"
            )
        return [ids[0] for ids in continuations]

    def clean_prompt(self, prompt: str) -> str:
        """The prompt as :meth:`build_inputs` templates it: special tokens removed, whitespace normalised."""
        return normalize_prompt(self.sanitize_prompt(prompt)[0])

    @torch.no_grad()
    def score_options(
        self,
        batch: LIVRBatch,
        choices: Sequence[Sequence[str]],
        stage: str = "full",
        block_latent_image: bool = False,
        answer_logits: torch.Tensor | None = None,
    ) -> list[torch.Tensor]:
        """Per batch row, ``[n_options]`` probabilities of that row's options (``choices[b]``), scored in context.

        A row whose options are all one token in context reads them off the answer row's logits (``answer_logits``
        [B, V] if given, else one forward): ``softmax(logits[ids])``, the numbers of every release so far. The rows
        with a longer option go through one more forward with every option of the row appended after the prompt as
        ANSWER rows (so the stage mask applies to them: in Stage 1 they see no image key), each option attending only
        to the prompt and its own tokens, at the positions it would have alone; score = per-token mean log-prob.
        """
        if batch.labels is not None:
            raise LIVRError("options are scored on a batch built without answers")
        if len(choices) != batch.input_ids.shape[0] or len(batch.prompts) != len(choices):
            raise LIVRError(
                f"got option lists for {len(choices)} rows; the batch has {batch.input_ids.shape[0]} rows "
                f"and {len(batch.prompts)} prompts"
            )
        conts = []
        for b, (prompt, options) in enumerate(zip(batch.prompts, choices)):
            last_id, continuation = self.option_continuations(prompt, list(options))
            if int(batch.input_ids[b, int(batch.answer_start[b]) - 1]) != last_id:
                raise LIVRError("the batch's prompt does not end as its template does; build it with build_inputs")
            conts.append(continuation)
        single = [all(len(ids) == 1 for ids in row) for row in conts]
        out: list[torch.Tensor | None] = [None] * len(conts)
        if any(single):
            logits = self.answer_logits(batch, stage, block_latent_image) if answer_logits is None else answer_logits
            for b in (b for b, one in enumerate(single) if one):
                out[b] = logits[b, [ids[0] for ids in conts[b]]].float().softmax(-1)
        if not all(single):
            multi = [row if not one else [] for row, one in zip(conts, single)]
            scores = self._continuation_scores(batch, multi, stage, block_latent_image)
            for b in (b for b, one in enumerate(single) if not one):
                out[b] = scores[b].softmax(-1)
        return out  # type: ignore[return-value]

    @torch.no_grad()
    def choice_probs(
        self,
        batch: LIVRBatch,
        choices: Sequence[str],
        stage: str = "full",
        block_latent_image: bool = False,
        answer_logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[B, n_choices]`` probabilities of the same options for every row (see :meth:`score_options`)."""
        n = batch.input_ids.shape[0]
        return torch.stack(self.score_options(batch, [list(choices)] * n, stage, block_latent_image, answer_logits))

    def _continuation_scores(
        self, batch: LIVRBatch, conts: list[list[list[int]]], stage: str, block_latent_image: bool
    ) -> list[torch.Tensor]:
        """Per row, ``[n_options]`` per-token mean log-probs of ``conts[b]`` (rows with no options: empty), from one
        forward of the batch with every row's options packed after its prompt."""
        packed, groups, position_index = _pack_continuations(batch, conts, self.tokenizer.pad_token_id or 0)
        mask = attention_mask_4d(packed.segments, stage, block_latent_image, self.dtype)  # [B, 1, T, T]
        query, key = groups[:, :, None], groups[:, None, :]  # [B, T, 1], [B, 1, T]
        other_option = (query >= 0) & (key >= 0) & (query != key)  # an option's rows never see another option
        mask.masked_fill_(other_option.unsqueeze(1), torch.finfo(mask.dtype).min)
        positions = self.family.position_ids(self.base_model, packed.inputs, packed.padding_mask)
        positions = positions.gather(-1, position_index.expand(positions.shape))
        hidden = self.base_model.model(**packed.inputs, attention_mask=mask, position_ids=positions).last_hidden_state
        rows, at, targets, owner = [], [], [], []
        for b, options in enumerate(conts):
            start, offset = int(batch.answer_start[b]), 0
            for j, ids in enumerate(options):
                for t, token in enumerate(ids):  # token t is predicted at the position before it
                    rows.append(b)
                    at.append(start - 1 if t == 0 else start + offset + t - 1)
                    targets.append(token)
                    owner.append((b, j))
                offset += len(ids)
        logits = self.base_model.lm_head(hidden[rows, at]).float()  # [N, V]
        if self.latent_token_ids:
            logits[:, self.latent_token_ids] = torch.finfo(logits.dtype).min
        token_logp = logits.log_softmax(-1)[torch.arange(len(targets)), targets]  # [N]
        scores = [torch.zeros(len(options)) for options in conts]
        for (b, j), value in zip(owner, token_logp):
            scores[b][j] += value
        return [
            s / torch.tensor([len(ids) for ids in options], dtype=torch.float) if len(options) else s
            for s, options in zip(scores, conts)
        ]

    @torch.no_grad()
    def generate(
        self, images: Sequence, prompts: Sequence[str], max_new_tokens: int = 8, stage: str = "full"
    ) -> list[str]:
        """Greedy decoding with the stage mask, recomputing the prefix each step (no KV cache: fine for short
        answers)."""
        batch = self.build_inputs(images, prompts)
        B = batch.input_ids.shape[0]
        outputs: list[list[int]] = [[] for _ in range(B)]
        done = torch.zeros(B, dtype=torch.bool)
        for _ in range(max_new_tokens):
            next_ids = self.answer_logits(batch, stage).argmax(-1)  # [B]
            for b in range(B):
                if not done[b]:
                    if int(next_ids[b]) == self.tokenizer.eos_token_id:
                        done[b] = True
                    else:
                        outputs[b].append(int(next_ids[b]))
            if done.all():
                break
            batch = _append_tokens(batch, next_ids, self.tokenizer.pad_token_id or 0)
        with self.text_lock:
            return [self.tokenizer.decode(o, skip_special_tokens=True).strip() for o in outputs]


_SPACES = re.compile(r"[^\S\n]+")  # runs of whitespace other than newlines


def normalize_prompt(prompt: str) -> str:
    """A prompt as the model was trained to read it: each line stripped, runs of spaces and tabs collapsed to one
    space, blank lines (and so leading / trailing newlines) dropped, ``\\r\\n`` read as ``\\n``.

    Applied after :meth:`LIVRModel.sanitize_prompt`, so a leading space, a doubled space, a trailing newline or a
    special token the user deleted (``<s>``, ``<image>``, leaving a stray space or newline) does not change the
    tokens the model sees, and so not its answer. The task generators' prompts are fixed points (tested)."""
    lines = (_SPACES.sub(" ", line).strip() for line in prompt.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def latent_token(i: int) -> str:
    return f"<latent_{i}>"


def _is_adapter_name(name: str) -> bool:
    return "lora_" in name or "trainable_tokens" in name


def _add_latent_tokens(model, processor, config: LIVRConfig) -> list[int]:
    """Add K special tokens to the tokenizer, grow the embeddings, initialise the new rows (see module doc)."""
    from tokenizers import AddedToken

    tokenizer = processor.tokenizer
    tokens = [latent_token(i) for i in range(config.n_latents)]
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in tokens], special_tokens=True)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    emb = model.get_input_embeddings()
    old_rows = emb.num_embeddings
    if max(ids) >= old_rows:
        model.resize_token_embeddings(max(ids) + 1, mean_resizing=False)
        emb = model.get_input_embeddings()
    existing = [i for i in range(min(old_rows, len(tokenizer) - config.n_latents))]
    gen = torch.Generator().manual_seed(config.latent_init_seed)
    with torch.no_grad():
        ref = emb.weight[existing].float()
        mean, std = ref.mean(0), ref.std(0)
        noise = torch.randn(len(ids), ref.shape[1], generator=gen)
        emb.weight[ids] = (mean + std * noise).to(emb.weight.dtype)
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.weight.data_ptr():
            out.weight[ids] = out.weight[existing].mean(0).to(out.weight.dtype)
    return list(ids)


def _attach_lora(model, family: Family, config: LIVRConfig):
    """LoRA on the language model's attention + MLP; latent rows trainable; everything else frozen."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=family.lora_target_regex,
        trainable_token_indices={"embed_tokens": list(config.latent_token_ids)} if config.n_latents else None,
        bias="none",
    )
    try:
        with warnings.catch_warnings():  # peft 0.21 asks transformers 5 a deprecated question on every load
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            peft_model = get_peft_model(model, lora)
    except ValueError as exc:
        raise LIVRError(f"could not attach LoRA to the language model: {str(exc).splitlines()[0]}") from None
    peft_model.eval()
    return peft_model


def _template_join(processor, tokenizer) -> str:
    """What a chat template writes between its generation prompt and an assistant message's text ("" if it has no
    template, renders no assistant turn, or its generation prompt is not a prefix of the rendered turn)."""
    template = getattr(processor, "chat_template", None) or getattr(tokenizer, "chat_template", None)
    if not template:
        return ""
    sentinel = "LIVRVIZOPTION"
    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Question?"}]}]
    answer = {"role": "assistant", "content": [{"type": "text", "text": sentinel}]}
    try:
        prompt = processor.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
        whole = processor.apply_chat_template(user + [answer], tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render an assistant turn has no join to read
        return ""
    if not whole.startswith(prompt) or sentinel not in whole[len(prompt) :]:
        return ""
    return whole[len(prompt) : whole.index(sentinel, len(prompt))]


def _pack_continuations(batch: LIVRBatch, conts: list[list[list[int]]], pad_id: int):
    """The batch with each row's options appended one after another after its last prompt token, as ANSWER tokens.

    Returns ``(packed batch [B, T'], groups [B, T'] (option index, -1 elsewhere), position_index [B, T'])``;
    ``position_index`` maps each option token to the position it would have alone (prompt end + its index), to be
    gathered from the position ids of the packed sequence (any family's layout: ``[..., B, T']``)."""
    ids, B, T = batch.input_ids, *batch.input_ids.shape
    starts = [int(s) for s in batch.answer_start]
    width = max(max(s + sum(len(c) for c in row) for s, row in zip(starts, conts)), max(starts))
    new_ids = torch.full((B, width), pad_id, dtype=ids.dtype)
    padding = torch.zeros((B, width), dtype=batch.padding_mask.dtype)
    segments = torch.full((B, width), int(Segment.PAD), dtype=batch.segments.dtype)
    groups = torch.full((B, width), -1, dtype=torch.long)
    position_index = torch.arange(width).repeat(B, 1)  # [B, T']
    per_token = {
        k: v
        for k, v in batch.inputs.items()
        if k != "input_ids" and not k.startswith("pixel") and tuple(v.shape) == (B, T)
    }
    extra = {k: torch.zeros((B, width), dtype=v.dtype) for k, v in per_token.items()}
    for b, (s, row) in enumerate(zip(starts, conts)):
        new_ids[b, :s], padding[b, :s], segments[b, :s] = ids[b, :s], batch.padding_mask[b, :s], batch.segments[b, :s]
        for k, v in per_token.items():
            extra[k][b, :s] = v[b, :s]
        at = s
        for j, option in enumerate(row):
            span = slice(at, at + len(option))
            new_ids[b, span] = torch.tensor(option, dtype=ids.dtype)
            padding[b, span], segments[b, span], groups[b, span] = 1, int(Segment.ANSWER), j
            position_index[b, span] = torch.arange(s, s + len(option))
            at += len(option)
    inputs = {**batch.inputs, **extra, "input_ids": new_ids}
    return (
        LIVRBatch(inputs, padding, segments, torch.tensor(starts), None, batch.prompts, batch.notes),
        groups,
        position_index,
    )


def _append_tokens(batch: LIVRBatch, next_ids: torch.Tensor, pad_id: int) -> LIVRBatch:
    """Append one ANSWER token per row right after its last real token (right padding is kept)."""
    ids, pm, seg = batch.input_ids, batch.padding_mask, batch.segments
    B, T = ids.shape
    pad_col = lambda t, v: torch.cat([t, torch.full((B, 1), v, dtype=t.dtype)], 1)
    ids, pm, seg = pad_col(ids, pad_id), pad_col(pm, 0), pad_col(seg, int(Segment.PAD))
    pos = pm.sum(1)  # first free slot per row
    rows = torch.arange(B)
    ids[rows, pos] = next_ids
    pm[rows, pos] = 1
    seg[rows, pos] = int(Segment.ANSWER)
    inputs = dict(batch.inputs)
    inputs["input_ids"] = ids
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = pad_col(inputs["mm_token_type_ids"], 0)
    return LIVRBatch(inputs, pm, seg, pos + 1, None, batch.prompts, batch.notes)


def load_model(name: str, variant: str | None = None, n_latents: int | None = None, **kwargs) -> LIVRModel:
    """Open anything: a LIVR checkpoint directory / demo name, or a plain VLM wrapped fresh."""
    ref = resolve_reference(name)
    if (Path(ref) / CONFIG_NAME).is_file():
        if variant is not None or n_latents is not None:
            cfg = LIVRConfig.from_json((Path(ref) / CONFIG_NAME).read_text())
            if (variant and variant != cfg.variant) or (n_latents and n_latents != cfg.n_latents):
                raise LIVRError(
                    f"{name} is a trained {cfg.variant} checkpoint with K={cfg.n_latents}; "
                    "variant/K cannot be changed when loading it"
                )
        return LIVRModel.load(ref, **kwargs)
    return LIVRModel.from_backbone(
        name, variant=variant or "livr", n_latents=16 if n_latents is None else n_latents, **kwargs
    )

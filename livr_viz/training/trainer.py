"""The compact two-stage LIVR trainer: one explicit loop you can read in one sitting.

* Stage schedule: ``livr`` spends ``stage1_fraction`` of the optimizer steps in the ``bottleneck`` stage, then
  switches to ``full``; ``latents_only`` and ``sft`` train in ``full`` only.  Each stage has its own warmup +
  cosine learning-rate schedule (as in the paper).
* Loss: next-token NLL on answer tokens only.  AdamW, gradient clipping, gradient accumulation, fp32 or bf16
  autocast.
* Data order is a pure function of ``(data_seed, step)``: every variant sees the same samples in the same order,
  and a resumed run sees exactly what an uninterrupted one would.  ``task_balance="grad_norm"`` makes every
  micro-batch one task (round robin) and scales each one's gradient to the step's mean norm before accumulating.
* Checkpoints are written to ``checkpoint.tmp/`` and renamed over ``checkpoint/`` (atomic on POSIX); they hold the
  trainable weights (safetensors), the optimizer moments (safetensors + JSON) and the RNG state.  ``resume=True``
  continues from there and ends with the same weights as an uninterrupted run.
* A LIVR run also keeps a full checkpoint of the end of Stage 1 (``stage1_checkpoint/``). ``branch_from=`` another
  run starts Stage 2 from it, with settings that differ only in what Stage 1 never reads (``stage2_lr``): Stage-2
  choices compared from one Stage 1, each ending exactly where a straight run with that setting would.
* Multi-process: under ``accelerate launch`` every process takes its own slice of each global batch and gradients
  are averaged with ``all_reduce`` before the step; rank 0 logs, evaluates and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import shutil
import time
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from livr_viz.core.config import (  # noqa: F401 - STAGES_BY_VARIANT re-exported
    PRECISIONS,
    STAGES_BY_VARIANT,
    TASK_BALANCES,
    LIVRConfig,
    check_one_of,
    model_settings,
)
from livr_viz.core.errors import LIVRError
from livr_viz.core.fsutil import fresh_tmp_dir, recover_dir, replace_dir, save_backbone
from livr_viz.core.model import LIVRModel
from livr_viz.data.dataset import SyntheticTaskDataset
from livr_viz.data.perception import CURRICULUM, KINDS, WORD_CURRICULUM, PerceptionDataset
from livr_viz.data.tasks import resolve_tasks
from livr_viz.training.evaluate import evaluate
from livr_viz.views.training import plot_training

# the model settings a TrainConfig carries in its LIVRConfig (read from LIVRConfig's fields); every other field is how
# to train
MODEL_FIELDS = model_settings()
# where a gradual Stage-2 opening (stage2_open_steps) starts: the spatial trio's Stage-1 model keeps its closed loss
# (0.506 against 0.498) with a -46 bias on the text rows' image keys and loses it (0.79) at -30 (measured)
OPEN_FROM_BIAS = -50.0


@dataclass(init=False)
class TrainConfig:
    """Training settings around the model's own :class:`~livr_viz.core.config.LIVRConfig` (``model``: variant, K,
    Stage-1 share, latent placement, answer format, LoRA), which is validated there and nowhere else. Defaults follow
    the paper where it states them (LoRA lr 1e-4, wd 0.01, 5 % warmup).

    ``TrainConfig(variant="livr", n_latents=8, steps=500)`` sets the model's fields by name as well;
    :meth:`to_dict` / :meth:`from_dict` read and write the flat form of ``train_config.json``."""

    model: LIVRConfig
    tasks: str = "all"  # comma list of task names or "all"; backbone pretraining: "perception[:kind,kind]"
    steps: int = 1000  # optimizer steps in total (both stages)
    batch_size: int = 8  # micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step
    lr: float = 1e-4  # peak learning rate
    # LIVR: Stage 2's peak learning rate (None = lr, as the paper). Stage 2 restarts its warmup + cosine; at the
    # full rate it can throw away the route Stage 1 built (docs/experiments/task-weights/)
    stage2_lr: float | None = None
    # LIVR: in Stage 1 every trained parameter but the latent rows learns at this fraction of the rate (1 = the paper;
    # 0 = Stage 1 trains the latent rows alone). At 0.1 Stage 1 routed less and Stage 2 still opened with a loss
    # shock, a larger one (docs/experiments/spatial-trio/)
    stage1_body_lr_scale: float = 1.0
    # LIVR: Stage 2 opens the text rows' view of the image over this many steps instead of at once (0 = the paper):
    # at Stage-2 step j < N a bias OPEN_FROM_BIAS * (1 - j / N) is added to the TEXT/ANSWER rows' image keys. After
    # Stage 1 those rows score image keys up to ~40 nats above their own: any opening shocks them (docs/experiments/
    # spatial-trio/, "The stage switch")
    stage2_open_steps: int = 0
    # LIVR: Stage 1 opens with one focus block per task named here, in this order (comma list; "" = the plain mix, as
    # the paper): for stage1_focus_steps steps the named task fills stage1_focus_share of every micro-batch and the
    # rest is the fine-tune's plain mix of all tasks (replay); the Stage-1 steps after the last block are the plain
    # mix. Alone, near the peak rate, a task routes image -> latents -> answer in ~300 steps; in the nine-task mix
    # only counting did, in 2,000 Stage-1 steps (docs/experiments/spatial-trio/, "Stage 1 alone on one task")
    stage1_focus: str = ""
    stage1_focus_steps: int = 0
    stage1_focus_share: float = 0.5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05  # of each stage
    max_grad_norm: float = 1.0
    precision: str = "fp32"  # fp32 | bf16 (autocast on the model's device: CPU or CUDA)
    # recompute each layer's activations in the backward pass instead of storing them: memory for compute, the
    # same numbers (a 3-7 B backbone does not train on one GPU without it; README "Installing on a GPU machine")
    gradient_checkpointing: bool = False
    n_train_per_task: int = 1000  # training examples per task (the paper: 1k)
    n_val_per_task: int = 50  # validation examples per task for periodic eval
    eval_every: int = 200  # steps between validation evals (0 = only at the end)
    checkpoint_every: int = 100  # steps between checkpoints (0 = only at the end)
    log_every: int = 10
    seed: int = 42  # latent init + dropout
    data_seed: int = 0  # synthetic data seed (train / val splits of this seed)
    image_size: int = 96
    full_finetune: bool = False  # all parameters, no LoRA (backbone pretraining; a task fine-tune: finetune="full")
    # with full_finetune: keep the vision tower frozen (LLaVA's recipe). A trained tower forgets stage 0's shape
    # features but adapts its others; the frozen one gave a worse trio (docs/experiments/frozen-tower/)
    freeze_vision_tower: bool = False
    knobs: dict = field(default_factory=dict)  # task -> difficulty knob overrides
    # "grad_norm": every micro-batch holds one task (round robin) and its gradient is scaled to the step's mean
    # gradient norm before accumulation, so no task's gradient outweighs another's (see RESULTS.md: in the
    # nine-task mix counting's gradient is 25x art style's); "none": mixed micro-batches, plain mean
    task_balance: str = "none"
    # task -> integer sampling weight (tasks not named: 1): a task of weight w gets w shares of every training batch
    # (a smooth round robin of the weights, each task drawing from its own seeded order of its questions); {} = the
    # plain shuffled mix, every task an equal share on average
    task_weights: dict = field(default_factory=dict)

    def __init__(self, model: LIVRConfig | None = None, **settings):
        given = {k: settings.pop(k) for k in MODEL_FIELDS if k in settings}
        if model is not None and given:
            raise LIVRError(f"give the model's settings in model= or by name, not both ({', '.join(given)})")
        self.model = model if model is not None else LIVRConfig(**given)
        for f in fields(self)[1:]:
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            setattr(self, f.name, settings.pop(f.name, default))
        if settings:
            raise LIVRError(f"unknown training setting(s): {', '.join(sorted(settings))}")
        self.__post_init__()

    def __post_init__(self):
        checks = {
            "steps": self.steps >= 1,
            "batch_size": self.batch_size >= 1,
            "grad_accum": self.grad_accum >= 1,
            "lr": self.lr > 0,
            "stage2_lr": self.stage2_lr is None or self.stage2_lr > 0,
            "stage1_body_lr_scale": 0.0 <= self.stage1_body_lr_scale <= 1.0,
            "stage2_open_steps": self.stage2_open_steps >= 0,
            "stage1_focus_steps": self.stage1_focus_steps >= 0,
            "stage1_focus_share": 0.0 < self.stage1_focus_share <= 1.0,
            "warmup_fraction": 0.0 <= self.warmup_fraction < 1.0,
            "n_train_per_task": self.n_train_per_task >= 1,
            "precision": self.precision in PRECISIONS,
            "task_balance": self.task_balance in TASK_BALANCES,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise LIVRError(f"invalid training setting {bad[0]}={getattr(self, bad[0])!r}")
        perception_kinds(self.tasks)  # validates "perception:…" early
        if self.task_balance != "none" and perception_kinds(self.tasks) is not None:
            raise LIVRError("task_balance applies to task-suite fine-tunes, not to perception pretraining")
        if self.stage2_lr is not None and self.variant != "livr":
            raise LIVRError(f"stage2_lr is LIVR's Stage-2 learning rate; variant {self.variant} has one stage (use lr)")
        if self.stage1_body_lr_scale != 1.0 and self.variant != "livr":
            raise LIVRError(
                f"stage1_body_lr_scale sets LIVR's Stage-1 rate for all but the latent rows; variant {self.variant} "
                "has no Stage 1"
            )
        if self.stage2_open_steps and self.variant != "livr":
            raise LIVRError(
                f"stage2_open_steps opens LIVR's Stage-2 mask gradually; variant {self.variant} has no Stage 1 to open"
            )
        if self.stage2_open_steps and self.stage2_open_steps >= self.steps - self.stage1_steps:
            raise LIVRError(
                f"stage2_open_steps={self.stage2_open_steps} leaves no step of Stage 2 fully open "
                f"(Stage 2 has {self.steps - self.stage1_steps} steps)"
            )
        if self.task_weights:
            check_task_weights(self.task_weights, self.tasks, self.task_balance)
        if self.stage1_focus or self.stage1_focus_steps:
            self._check_stage1_focus()
        if self.freeze_vision_tower and not self.full_finetune:
            raise LIVRError("freeze_vision_tower needs full_finetune (LoRA fine-tunes never touch the vision tower)")
        if self.full_finetune and self.variant != "sft" and perception_kinds(self.tasks) is not None:
            raise LIVRError(
                "full_finetune on perception (backbone pretraining) trains without latents: use variant sft"
            )

    def _check_stage1_focus(self) -> None:
        where = "stage1_focus (LIVR's Stage-1 focus blocks)"
        if self.variant != "livr":
            raise LIVRError(f"{where} shapes LIVR's Stage 1; variant {self.variant} has no Stage 1")
        if perception_kinds(self.tasks) is not None:
            raise LIVRError(f"{where} applies to task-suite fine-tunes, not to perception pretraining")
        if self.task_weights or self.task_balance != "none":
            raise LIVRError(f"{where} and {'task_weights' if self.task_weights else 'task_balance'} both set the mix")
        focus = self.focus_tasks
        if not focus or not self.stage1_focus_steps:
            raise LIVRError(f"{where} needs both the tasks (stage1_focus) and a block length (stage1_focus_steps)")
        names = resolve_tasks(self.tasks)
        unknown = [t for t in focus if t not in names]
        if unknown:
            raise LIVRError(
                f"stage1_focus names {', '.join(map(repr, unknown))}, not among this fine-tune's tasks "
                f"({', '.join(names)})"
            )
        if len(set(focus)) < len(focus):
            raise LIVRError(f"stage1_focus names a task twice: {self.stage1_focus!r}")
        if len(focus) * self.stage1_focus_steps > self.stage1_steps:
            raise LIVRError(
                f"{len(focus)} focus blocks of {self.stage1_focus_steps} steps do not fit in Stage 1 "
                f"({self.stage1_steps} steps)"
            )
        if round(self.stage1_focus_share * self.batch_size) < 1:
            raise LIVRError(
                f"stage1_focus_share={self.stage1_focus_share} gives the focus task no item of a "
                f"{self.batch_size}-item micro-batch"
            )

    @property
    def focus_tasks(self) -> list[str]:
        """The Stage-1 focus blocks' tasks, in order (empty: the plain mix throughout)."""
        return [t.strip() for t in self.stage1_focus.split(",") if t.strip()]

    def focus_at(self, step: int) -> tuple[int, str] | None:
        """(block, task) of the Stage-1 focus block that ``step`` falls in, else None."""
        if not self.stage1_focus_steps:  # set together with stage1_focus (checked), else no blocks
            return None
        focus, block = self.focus_tasks, step // self.stage1_focus_steps
        return (block, focus[block]) if 0 <= block < len(focus) and step < self.stage1_steps else None

    def to_dict(self) -> dict:
        """The flat form (``train_config.json``, ``results.json``): the model's fields, then the training ones."""
        flat = {k: getattr(self.model, k) for k in MODEL_FIELDS}
        flat.update({f.name: getattr(self, f.name) for f in fields(self)[1:]})
        return flat

    @classmethod
    def from_dict(cls, flat: dict) -> TrainConfig:
        return cls(**flat)

    @property
    def stage1_steps(self) -> int:
        return round(self.steps * self.stage1_fraction) if self.variant == "livr" else 0

    def stage_at(self, step: int) -> str:
        return "bottleneck" if step < self.stage1_steps else "full"

    def image_bias_at(self, step: int) -> float:
        """The bias on the text rows' image keys at ``step`` (:func:`~livr_viz.core.masks.attention_mask_4d`): from
        ``OPEN_FROM_BIAS`` linearly up to 0 over Stage 2's first ``stage2_open_steps``, else 0 (in Stage 1 the
        bottleneck mask itself closes the image)."""
        j = step - self.stage1_steps
        return OPEN_FROM_BIAS * (1 - j / self.stage2_open_steps) if 0 <= j < self.stage2_open_steps else 0.0

    def lr_at(self, step: int) -> float:
        """Warmup + cosine within the stage that ``step`` belongs to."""
        stage1 = step < self.stage1_steps
        start, length = (0, self.stage1_steps) if stage1 else (self.stage1_steps, self.steps - self.stage1_steps)
        peak = self.lr if stage1 or self.stage2_lr is None else self.stage2_lr
        return warmup_cosine(step - start, length, max(1, round(length * self.warmup_fraction)), peak)


for _name in MODEL_FIELDS:  # cfg.variant, cfg.n_latents, ... read the model's config (one source of truth)
    setattr(TrainConfig, _name, property(lambda self, _n=_name: getattr(self.model, _n)))


def check_task_weights(weights: dict, tasks: str, task_balance: str = "none") -> None:
    """``weights`` must name tasks of the fine-tune's suite with integer weights >= 1."""
    if perception_kinds(tasks) is not None:
        raise LIVRError("task_weights applies to task-suite fine-tunes, not to perception pretraining")
    if task_balance != "none":
        raise LIVRError("task_weights and task_balance=grad_norm are two ways to set the mix; use one")
    names = resolve_tasks(tasks)
    unknown = [t for t in weights if t not in names]
    if unknown:
        raise LIVRError(
            f"task_weights names {', '.join(map(repr, unknown))}, not among this fine-tune's tasks ({', '.join(names)})"
        )
    bad = [f"{t}={w!r}" for t, w in weights.items() if isinstance(w, bool) or not isinstance(w, int) or w < 1]
    if bad:
        raise LIVRError(f"task weights must be whole numbers >= 1; got {', '.join(bad)}")


def parse_task_weights(text: str) -> dict[str, int]:
    """``"art_style=4,counting=4"`` → ``{"art_style": 4, "counting": 4}`` (the CLI's ``--task-weights``)."""
    weights: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or not value.strip().isdigit():
            raise LIVRError(
                f"--task-weights takes task=whole number pairs separated by commas "
                f"(e.g. art_style=4,counting=4); got {part!r}"
            )
        weights[name.strip()] = int(value)
    if not weights:
        raise LIVRError("--task-weights is empty; give task=weight pairs, e.g. art_style=4,counting=4")
    return weights


def weighted_schedule(weights: list[int]) -> list[int]:
    """One period (``sum(weights)`` slots) of a smooth weighted round robin: task ``t`` fills ``weights[t]`` slots,
    spread as evenly as the weights allow (nginx's smooth weighted round robin)."""
    current, total, order = [0] * len(weights), sum(weights), []
    for _ in range(total):
        current = [c + w for c, w in zip(current, weights)]
        pick = max(range(len(weights)), key=lambda t: current[t])
        current[pick] -= total
        order.append(pick)
    return order


def weighted_indices(weights: list[int], n_per_task: int, data_seed: int, start: int, count: int) -> list[int]:
    """Slots ``start .. start+count`` of the endless weighted stream over an interleaved task dataset (item
    ``j * T + t`` is question ``j`` of task ``t``): the slot's task comes from :func:`weighted_schedule`, its question
    from that task's own seeded order, so the stream is a pure function of the slot (exact resume)."""
    schedule, n_tasks = weighted_schedule(weights), len(weights)
    period = len(schedule)
    seen = [[0] * n_tasks]  # seen[k][t]: slots of task t in schedule[:k]
    for t in schedule:
        seen.append([c + (u == t) for u, c in enumerate(seen[-1])])
    out = []
    for slot in range(start, start + count):
        cycle, k = divmod(slot, period)
        task = schedule[k]
        j = sample_indices(n_per_task, data_seed * 1_009 + task, cycle * weights[task] + seen[k][task], 1)[0]
        out.append(j * n_tasks + task)
    return out


def focus_indices(
    task: int, n_tasks: int, n_per_task: int, data_seed: int, turn: int, mix_start: int, count: int, share: float
) -> list[int]:
    """A micro-batch of a Stage-1 focus block over an interleaved task dataset (item ``j * T + t`` is question ``j``
    of task ``t``): ``round(share * count)`` questions of ``task``, the block's ``turn``-th draw from that task's own
    seeded order, then the rest of the plain mix's slots ``mix_start ..``. A pure function of its arguments, so a
    resumed run draws the same batches."""
    n_focus = round(share * count)
    own = sample_indices(n_per_task, data_seed * 1_009 + task, turn * n_focus, n_focus)
    rest = sample_indices(n_per_task * n_tasks, data_seed, mix_start, count - n_focus)
    return [j * n_tasks + task for j in own] + rest


def warmup_cosine(i: int, length: int, warm: int, peak: float) -> float:
    """Learning rate at step ``i`` of ``length``: linear warmup over ``warm`` steps to ``peak``, then cosine to 0."""
    if i < warm:
        return peak * (i + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (i - warm) / max(1, length - warm)))


# a preset's columns, in order; a row may stop early (the fields it leaves out keep TrainConfig's defaults)
PRESET_COLUMNS = (
    "steps",
    "batch_size",
    "lr",
    "n_train_per_task",
    "n_val_per_task",
    "eval_every",
    "checkpoint_every",
    "log_every",
)


def _preset(*row, **more) -> dict:
    """One preset from a row of :data:`PRESET_COLUMNS` values and named extras (a table reads better than dicts)."""
    if len(row) > len(PRESET_COLUMNS):
        raise ValueError(f"a preset row has at most {len(PRESET_COLUMNS)} values: {PRESET_COLUMNS}")
    return dict(zip(PRESET_COLUMNS, row), **more)


# rows: steps, batch size, lr, training / validation questions per task, eval / checkpoint / log every N steps
PRESETS: dict[str, dict] = {
    "quick": _preset(24, 8, 2e-3, 64, 8, 12, 8, 4),  # tests: a couple of minutes at most on 2 CPU cores
    "demo": _preset(1000, 32, 2e-3, 1000, 30, 200, 100, 10),  # the shipped demo models (time: RESULTS.md)
    # the paper's multi-task recipe: effective batch 8, lr 1e-4, 5 epochs over 1k per task
    "paper": _preset(5 * 1000 * 9 // 8, 8, 1e-4, 1000, 100, 500, 500),
}
PRETRAIN_PRESETS: dict[str, dict] = {
    "quick": _preset(16, 8, 2e-3, 100_000, 8, 8, 8, 4, warmup_fraction=0.1),
    "demo": _preset(3000, 32, 1e-3, 10_000_000, 50, 500, 100, 10, warmup_fraction=0.03, weight_decay=0.05),
}


# fine-tunes that train every parameter (``finetune="full"``): the pretraining phases' optimiser (wd 0.05, 3 % warmup),
# a third of their learning rate (at their 1e-3 a full fine-tune on the nine tasks lost the backbone's readings,
# docs/experiments/stage1-route/), fresh questions; measured in docs/experiments/full-finetune/
FULL_FINETUNE_PRESETS: dict[str, dict] = {
    "quick": dict(PRESETS["quick"], lr=3e-4),
    "demo": _preset(2000, 32, 3e-4, 1_000_000, 100, 250, 100, 10, warmup_fraction=0.03, weight_decay=0.05),
}
# the longer resumable run (about 70 min per variant alone on 2 cores): 2.5 x the demo's steps, so LIVR's
# Stage 1 gets the ~2,000 steps the nine-task mix needed before a route formed (docs/experiments/full-finetune/)
FULL_FINETUNE_PRESETS["full"] = dict(FULL_FINETUNE_PRESETS["demo"], steps=5000, eval_every=500)
FINETUNE_PRESETS = {"lora": PRESETS, "full": FULL_FINETUNE_PRESETS}


def preset_config(preset: str, pretrain: bool = False, finetune: str = "lora", **overrides) -> TrainConfig:
    """A preset's settings with ``overrides`` (None = the preset's). ``pretrain``: the backbone's full-parameter
    perception phases; ``finetune="full"``: a task fine-tune of every parameter (any variant) instead of LoRA."""
    check_one_of("finetune", finetune, FINETUNE_PRESETS)
    table = PRETRAIN_PRESETS if pretrain else FINETUNE_PRESETS[finetune]
    if preset not in table:
        raise LIVRError(f"unknown preset {preset!r}; choose from {', '.join(table)}")
    values = dict(table[preset])
    if pretrain:
        values.update(variant="sft", tasks="perception", full_finetune=True)
    elif finetune == "full":
        values.update(full_finetune=True)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


# --------------------------------------------------------------------------------------------- data
def perception_kinds(tasks: str) -> tuple[str, ...] | None:
    """``"perception"`` → the curriculum's kinds, ``"perception:colour,read_letter"`` → those (any kind, including
    the diagnostic ones); None for the task suite."""
    if tasks != "perception" and not tasks.startswith("perception:"):
        return None
    spec = tasks.partition(":")[2]
    if spec.strip() == "words":  # the word-answer curriculum with the tasks' sub-skills
        return WORD_CURRICULUM
    kinds = tuple(k.strip() for k in spec.split(",") if k.strip()) or CURRICULUM
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise LIVRError(f"unknown perception kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    return kinds


def build_datasets(cfg: TrainConfig):
    kinds = perception_kinds(cfg.tasks)
    if kinds is not None:
        return (
            PerceptionDataset("train", cfg.n_train_per_task, cfg.data_seed, cfg.image_size, kinds),
            PerceptionDataset("val", cfg.n_val_per_task * len(kinds), cfg.data_seed, cfg.image_size, kinds),
        )
    return (
        SyntheticTaskDataset(
            cfg.tasks, "train", cfg.n_train_per_task, cfg.data_seed, cfg.image_size, cfg.knobs, cfg.answer_format
        ),
        SyntheticTaskDataset(
            cfg.tasks, "val", cfg.n_val_per_task, cfg.data_seed, cfg.image_size, cfg.knobs, cfg.answer_format
        ),
    )


@functools.lru_cache(maxsize=16)  # one order per task of a weighted mix
def _permutation(n_items: int, data_seed: int, epoch: int) -> torch.Tensor:
    # cached: drawing a 10M-item permutation takes ~0.3 s, as long as a training step
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(data_seed * 100_003 + epoch))


def sample_indices(n_items: int, data_seed: int, start: int, count: int) -> list[int]:
    """Items ``start .. start+count`` of the endless stream of seeded permutations of ``range(n_items)``."""
    out = []
    position = start
    while len(out) < count:
        epoch, offset = divmod(position, n_items)
        perm = _permutation(n_items, data_seed, epoch)
        take = min(count - len(out), n_items - offset)
        out += perm[offset : offset + take].tolist()
        position += take
    return out


# --------------------------------------------------------------------------------------------- checkpoints
def _trainable(lm) -> dict[str, torch.Tensor]:
    return {n: p for n, p in lm.model.named_parameters() if p.requires_grad}


def _latent_rows(lm) -> dict[int, torch.Tensor | None]:
    """Trained parameters that hold the latent tokens' input embeddings, by ``id``: the rows of a trained input
    embedding matrix (a full fine-tune), or ``None`` for a parameter that holds latent rows only (LoRA's
    trainable-token delta)."""
    ids = list(getattr(lm.config, "latent_token_ids", []) or [])
    if not ids:
        return {}
    found: dict[int, torch.Tensor | None] = {
        id(p): None for n, p in lm.model.named_parameters() if p.requires_grad and "trainable_tokens" in n
    }
    weight = getattr(lm.model.get_input_embeddings(), "weight", None)
    if weight is not None and weight.requires_grad:
        found[id(weight)] = torch.tensor(ids, dtype=torch.long, device=weight.device)
    return found


def save_checkpoint(path: Path, lm, optimizer, step: int, cfg: TrainConfig, elapsed_s: float | None = None) -> None:
    """Atomic: write ``path.tmp`` completely, then rename it over ``path``; a failure leaves ``path`` intact.
    ``elapsed_s``: the run's training wall time so far, over every resumed part (None: not known)."""
    recover_dir(path)
    try:
        _save_checkpoint(path, lm, optimizer, step, cfg, elapsed_s)
    except OSError as exc:
        last = "none yet"
        if (path / "trainer_state.json").is_file():
            last = f"step {json.loads((path / 'trainer_state.json').read_text())['step']}"
        raise LIVRError(
            f"could not write a checkpoint under {path.parent} ({exc.strerror or exc}); "
            f"the last complete checkpoint ({last}) is intact"
        ) from None


def _save_checkpoint(path: Path, lm, optimizer, step: int, cfg: TrainConfig, elapsed_s: float | None) -> None:
    tmp = fresh_tmp_dir(path)
    params = _trainable(lm)
    save_file({n: p.detach().contiguous() for n, p in params.items()}, str(tmp / "trainable.safetensors"))
    names = list(params)
    index = {id(p): i for i, p in enumerate(params.values())}
    tensors, scalars = {}, {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for key, value in state.items():
                name = f"{names[index[id(p)]]}::{key}"
                if isinstance(value, torch.Tensor):
                    tensors[name] = value.detach().contiguous()
                else:
                    scalars[name] = value
    tensors["__rng__"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "trainer_state.json").write_text(
        json.dumps({"step": step, "scalars": scalars, "config": cfg.to_dict(), "elapsed_s": elapsed_s}, indent=2)
    )
    replace_dir(tmp, path)


# bookkeeping only: changing these does not change what a run trains
# settings that change neither the numbers nor the data: a run may be resumed with them changed
_BOOKKEEPING = ("eval_every", "checkpoint_every", "log_every", "n_val_per_task", "gradient_checkpointing")
# settings that Stage 1 never reads: a branch from another run's Stage-1 checkpoint may change them
STAGE2_ONLY = ("stage2_lr", "stage2_open_steps")
STAGE1_CHECKPOINT = "stage1_checkpoint"  # a LIVR run's full checkpoint at the end of Stage 1 (branch_from=)


def config_differences(saved: dict, cfg: TrainConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """Settings in which ``cfg`` differs from a run's saved config (``name: saved -> new``), bookkeeping and
    ``ignore`` left out."""
    new = cfg.to_dict()
    return [
        f"{k}: {saved.get(k)!r} -> {v!r}"
        for k, v in new.items()
        if k not in _BOOKKEEPING and k not in ignore and k in saved and saved[k] != v
    ]


def check_run_settings(run_dir: Path, cfg: TrainConfig) -> None:
    """A run folder whose ``train_config.json`` differs from ``cfg`` is an error naming the differences, so a
    finished or half-trained run is never silently reused with other settings."""
    saved = run_dir / "train_config.json"
    changed = config_differences(json.loads(saved.read_text()), cfg) if saved.is_file() else []
    if changed:
        raise LIVRError(
            f"{run_dir} holds a model trained with other settings ({'; '.join(changed)}); delete that "
            "folder to retrain it, or use a fresh --out"
        )


def load_checkpoint(path: Path, lm, optimizer, cfg: TrainConfig | None = None) -> int:
    """Restore trainable weights, optimizer moments and RNG; returns the step to continue from.
    With ``cfg``, a checkpoint trained with other settings is refused before anything is restored."""
    state = json.loads((path / "trainer_state.json").read_text())
    changed = config_differences(state.get("config", {}), cfg) if cfg is not None else []
    if changed:
        raise LIVRError(
            f"--resume: the checkpoint in {path.parent} was trained with other settings "
            f"({'; '.join(changed)}); resume with the same settings or use a fresh --out"
        )
    weights = load_file(str(path / "trainable.safetensors"))
    params = _trainable(lm)
    missing = set(params) - set(weights)
    if missing:
        raise LIVRError(f"checkpoint {path} does not match this model (missing {sorted(missing)[0]})")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])
    tensors = load_file(str(path / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("__rng__"))
    for n, p in params.items():
        entry = {k.split("::", 1)[1]: v for k, v in tensors.items() if k.split("::", 1)[0] == n}
        entry.update({k.split("::", 1)[1]: v for k, v in state["scalars"].items() if k.split("::", 1)[0] == n})
        if entry:
            optimizer.state[p] = entry
    return int(state["step"])


# --------------------------------------------------------------------------------------------- the loop
class Trainer:
    """``Trainer(lm, cfg, out_dir).run(resume=False)`` → final metrics; see the module docstring."""

    def __init__(self, lm, cfg: TrainConfig, out_dir: str | Path, progress: bool = True):
        from accelerate import PartialState

        self.lm, self.cfg, self.out = lm, cfg, Path(out_dir)
        self.state = PartialState()
        lm.model.to(self.state.device)  # this process's device (CPU here; one GPU per process under accelerate)
        self.progress = progress and self.state.is_main_process
        self.train_set, self.val_set = build_datasets(cfg)
        self.params = list(_trainable(lm).values())
        if not self.params:
            raise LIVRError("the model has no trainable parameters")
        decay = [p for p in self.params if p.dim() >= 2]
        no_decay = [p for p in self.params if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
        )
        self.checkpoint_dir = self.out / "checkpoint"
        self.log_path = self.out / "log.jsonl"
        self._latent_rows = _latent_rows(lm)

    def _scale_body_update(self, before: list[torch.Tensor], scale: float) -> None:
        """Shrink the optimizer step just taken to ``scale`` of its size for every parameter but the latent rows.
        AdamW's step (decoupled decay included) is linear in the learning rate, so this is the step at ``scale``
        times the rate, while the moments still follow the gradients."""
        with torch.no_grad():
            for p, old in zip(self.params, before):
                rows = self._latent_rows.get(id(p), ())
                if rows is None:  # a parameter that holds only latent rows (LoRA's trainable-token delta)
                    continue
                kept = p[rows].clone() if len(rows) else None  # the latent rows keep the whole step
                p.lerp_(old, 1.0 - scale)  # old + scale * (stepped - old)
                if kept is not None:
                    p[rows] = kept

    # -- helpers
    def _check_output_dir(self) -> None:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = self.out / ".write-test"
            probe.write_bytes(b"x" * 4096)
            probe.unlink()
        except OSError as exc:
            raise LIVRError(f"cannot write to output directory {self.out}: {exc.strerror or exc}") from None

    def _log(self, record: dict) -> None:
        if self.state.is_main_process:
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps(record) + "\n")

    def _micro_batch(self, step: int, micro: int):
        items = [self.train_set[i] for i in self._micro_batch_indices(step, micro)]
        return self.lm.build_inputs(
            [it.image for it in items], [it.prompt for it in items], [it.target for it in items]
        )

    def _micro_batch_indices(self, step: int, micro: int) -> list[int]:
        """Training items of this process's share of micro-batch ``micro`` of optimizer step ``step``."""
        cfg, world, rank = self.cfg, self.state.num_processes, self.state.process_index
        global_batch = cfg.batch_size * world
        index = step * cfg.grad_accum + micro  # micro-batches so far
        focus = cfg.focus_at(step)
        if focus is not None:
            return focus_indices(
                self.train_set.tasks.index(focus[1]),
                len(self.train_set.tasks),
                self.train_set.n_per_task,
                cfg.data_seed,
                (index - focus[0] * cfg.stage1_focus_steps * cfg.grad_accum) * world + rank,
                index * global_batch + rank * cfg.batch_size,
                cfg.batch_size,
                cfg.stage1_focus_share,
            )
        if cfg.task_weights:
            weights = [cfg.task_weights.get(t, 1) for t in self.train_set.tasks]
            return weighted_indices(
                weights,
                self.train_set.n_per_task,
                cfg.data_seed,
                index * global_batch + rank * cfg.batch_size,
                cfg.batch_size,
            )
        if cfg.task_balance == "none":
            return sample_indices(
                len(self.train_set), cfg.data_seed, index * global_batch + rank * cfg.batch_size, cfg.batch_size
            )
        # task_balance: one task per micro-batch, round robin; each task has its own seeded order of its items
        n_tasks = len(self.train_set.tasks)
        task, turn = index % n_tasks, index // n_tasks
        start = turn * global_batch + rank * cfg.batch_size
        return [
            j * n_tasks + task
            for j in sample_indices(self.train_set.n_per_task, cfg.data_seed * 1_009 + task, start, cfg.batch_size)
        ]

    def _evaluate(self, step: int) -> dict | None:
        if not self.state.is_main_process:
            return None
        self.lm.model.eval()
        metrics = evaluate(self.lm, self.val_set, "full", batch_size=64)
        record = {"step": step}

        def add(key: str, m: dict) -> None:
            record.update(
                {key: {t: v["accuracy"] for t, v in m["tasks"].items()}, f"{key}_average": m["average"].get("accuracy")}
            )

        add("eval", metrics)
        if self.cfg.n_latents:  # the same questions under the Stage-1 mask: has a route image -> latents -> answer
            # formed? (the answer rows see no image; chance where nothing flows through the latents)
            add("eval_bottleneck", evaluate(self.lm, self.val_set, "bottleneck", batch_size=64))
        self.lm.model.train()
        self._log(record)
        return metrics

    def train_step(self, batches: list, stage: str, autocast=None, image_bias: float = 0.0) -> tuple[float, float]:
        """One optimizer step over ``batches`` (gradient accumulation): loss, all-reduce, clip, AdamW."""
        loss_sum = 0.0
        balanced = self.cfg.task_balance == "grad_norm"
        total = [torch.zeros_like(p) for p in self.params] if balanced else None
        norms = []
        for batch in batches:
            with autocast or contextlib.nullcontext():
                loss = self.lm.loss(batch, stage, image_bias=image_bias) / len(batches)
            loss.backward()
            loss_sum += float(loss.detach())
            if balanced:  # set this micro-batch's (one task's) gradient aside at unit norm
                grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
                norm = float(torch.nn.utils.get_total_norm(grads))
                norms.append(norm)
                for acc, g in zip(total, grads):
                    acc.add_(g, alpha=1.0 / max(norm, 1e-12))
                self.optimizer.zero_grad(set_to_none=True)
        if balanced:  # every task at the step's mean norm: the same scale as a plain mean of equal norms
            scale = sum(norms) / len(norms) / len(batches)
            for p, acc in zip(self.params, total):
                p.grad = acc.mul_(scale)
        if self.state.num_processes > 1:
            for p in self.params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                torch.distributed.all_reduce(p.grad)
                p.grad /= self.state.num_processes
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm))
        scale = self.cfg.stage1_body_lr_scale if stage == "bottleneck" else 1.0
        before = [p.detach().clone() for p in self.params] if scale != 1.0 else None
        self.optimizer.step()
        if before is not None:
            self._scale_body_update(before, scale)
        self.optimizer.zero_grad(set_to_none=True)
        return loss_sum, grad_norm

    def _branch(self, source: Path) -> tuple[int, float | None]:
        """Start this run at the end of Stage 1 of the LIVR run in ``source``: its Stage-1 checkpoint (weights,
        AdamW moments, RNG), its log and its ``stage1_model``. Returns (step, training seconds so far)."""
        cfg, source = self.cfg, Path(source)
        if not (cfg.variant == "livr" and 0 < cfg.stage1_steps < cfg.steps):
            raise LIVRError("branching from a Stage-1 checkpoint needs a LIVR run with both stages")
        if source.resolve() == self.out.resolve():
            raise LIVRError(f"a run cannot branch from its own folder ({source}); use a fresh --out")
        ckpt = source / STAGE1_CHECKPOINT
        recover_dir(ckpt)
        if not (ckpt / "trainer_state.json").is_file():
            raise LIVRError(
                f"--branch-from: no Stage-1 checkpoint in {source} (a LIVR run writes {STAGE1_CHECKPOINT}/ when its "
                "Stage 1 ends)"
            )
        if (self.out / "checkpoint").exists() or (self.out / "model").exists():
            raise LIVRError(f"{self.out} already holds a run: --resume it, or branch into a fresh --out")
        state = json.loads((ckpt / "trainer_state.json").read_text())
        changed = config_differences(state["config"], cfg, ignore=STAGE2_ONLY)
        if changed:
            raise LIVRError(
                f"--branch-from: {source}'s Stage 1 was trained with other settings ({'; '.join(changed)}); a branch "
                f"may change only {', '.join(STAGE2_ONLY)}"
            )
        start = load_checkpoint(ckpt, self.lm, self.optimizer)
        if start != cfg.stage1_steps:  # unreachable through the config check; a hand-edited checkpoint
            raise LIVRError(f"{ckpt} is at step {start}, not at the end of Stage 1 ({cfg.stage1_steps})")
        records = source / "log.jsonl"
        lines = records.read_text().splitlines() if records.is_file() else []
        kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= start]
        self.log_path.write_text("".join(k + "\n" for k in kept))
        if (source / "stage1_model").is_dir():
            shutil.copytree(source / "stage1_model", self.out / "stage1_model", dirs_exist_ok=True)
        (self.out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        (self.out / "branch.json").write_text(
            json.dumps({"branched_from": str(source.resolve()), "step": start, "config": state["config"]}, indent=2)
        )
        return start, state.get("elapsed_s")

    # -- main
    def run(self, resume: bool = False, branch_from: str | Path | None = None) -> dict:
        """Train to ``cfg.steps``: from scratch, from this folder's checkpoint (``resume``), or from the end of Stage 1
        of another LIVR run (``branch_from``, a run folder holding ``stage1_checkpoint/``)."""
        cfg, lm = self.cfg, self.lm
        if resume and branch_from is not None:
            raise LIVRError("resume continues this folder's run; branch_from starts a new one: give one of them")
        self._check_output_dir()
        start = 0
        prior_s: float | None = 0.0  # training wall time of the run's earlier parts (None: not recorded)
        if branch_from is not None:
            if self.state.is_main_process:
                start, prior_s = self._branch(Path(branch_from))
            self.state.wait_for_everyone()
            if not self.state.is_main_process:  # the other processes read the same checkpoint
                start = load_checkpoint(Path(branch_from) / STAGE1_CHECKPOINT, lm, self.optimizer)
        elif resume:
            if self.state.is_main_process:
                recover_dir(self.checkpoint_dir)  # a kill between the two renames of a checkpoint swap
            self.state.wait_for_everyone()
            if not self.checkpoint_dir.is_dir():
                raise LIVRError(f"--resume: no checkpoint in {self.out}")
            start = load_checkpoint(self.checkpoint_dir, lm, self.optimizer, cfg)
            prior_s = json.loads((self.checkpoint_dir / "trainer_state.json").read_text()).get("elapsed_s")
            if start == cfg.stage1_steps and start < cfg.steps and self.state.is_main_process:
                stage1 = self.out / STAGE1_CHECKPOINT  # killed between the two saves at the end of Stage 1
                if not (stage1 / "trainer_state.json").is_file() and not recover_dir(stage1):
                    shutil.copytree(self.checkpoint_dir, stage1)
            if self.state.is_main_process and self.log_path.exists():  # drop log lines past the checkpoint

                def kept(record: dict) -> bool:  # lines of the checkpoint's own step were written before it was;
                    step = record.get("step", 0)  # only a finished run's final eval is logged again
                    return step < start or (step == start and not (start >= cfg.steps and "eval" in record))

                keep = [
                    line for line in self.log_path.read_text().splitlines() if line.strip() and kept(json.loads(line))
                ]
                self.log_path.write_text("".join(k + "\n" for k in keep))
        else:
            torch.manual_seed(cfg.seed)  # dropout stream of this run (the trainer owns the process RNG)
            if self.state.is_main_process:
                self.log_path.write_text("")
                (self.out / "train_config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        lm.model.train()
        bar = None
        if self.progress:
            bar = tqdm(total=cfg.steps, initial=start, desc=f"train {cfg.variant}", dynamic_ncols=True)
        autocast = training_autocast(lm, cfg.precision)
        if cfg.gradient_checkpointing:
            enable_gradient_checkpointing(lm)
        tokens, t0 = 0, time.perf_counter()

        def elapsed_s() -> float | None:  # training wall time over every part of the run
            return None if prior_s is None else prior_s + time.perf_counter() - t0

        for step in range(start, cfg.steps):
            stage = cfg.stage_at(step)
            lr = cfg.lr_at(step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batches = [self._micro_batch(step, micro) for micro in range(cfg.grad_accum)]
            tokens += sum(int(b.padding_mask.sum()) for b in batches)
            bias, focus = cfg.image_bias_at(step), cfg.focus_at(step)
            loss_sum, grad_norm = self.train_step(batches, stage, autocast, bias)
            done = step + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum:.3f}", stage=stage)
            if done % cfg.log_every == 0 or done == cfg.steps:
                elapsed = time.perf_counter() - t0
                self._log(
                    {
                        "step": done,
                        "stage": stage,
                        "loss": loss_sum,
                        "lr": lr,
                        "grad_norm": grad_norm,
                        "tokens_per_s": tokens * self.state.num_processes / max(elapsed, 1e-9),
                        **({"image_bias": round(bias, 4)} if bias < 0.0 else {}),
                        **({"focus": focus[1]} if focus is not None else {}),
                    }
                )
            if done == cfg.stage1_steps and self.state.is_main_process:  # for the Stage-1-only sanity check
                lm.save(self.out / "stage1_model")
            if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
                self._evaluate(done)
            if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < cfg.steps:
                if self.state.is_main_process:
                    save_checkpoint(self.checkpoint_dir, lm, self.optimizer, done, cfg, elapsed_s())
                self.state.wait_for_everyone()
            if done == cfg.stage1_steps and done < cfg.steps:  # where Stage-2 choices can branch (branch_from=)
                if self.state.is_main_process:
                    save_checkpoint(self.out / STAGE1_CHECKPOINT, lm, self.optimizer, done, cfg, elapsed_s())
                self.state.wait_for_everyone()
        if bar is not None:
            bar.close()
        metrics = self._evaluate(cfg.steps)
        if self.state.is_main_process:
            save_checkpoint(self.checkpoint_dir, lm, self.optimizer, cfg.steps, cfg, elapsed_s())
            self._save_final()
            plot_training(self.log_path, self.out / "training.png", cfg.stage1_steps)
        self.state.wait_for_everyone()
        lm.model.eval()
        return metrics or {}

    def _save_final(self) -> None:
        lm, cfg = self.lm, self.cfg
        lm.config.trained_steps = cfg.steps
        lm.config.training = {k: v for k, v in cfg.to_dict().items() if k != "knobs"}
        if cfg.full_finetune and perception_kinds(cfg.tasks) is not None:  # a backbone for the next phase
            save_backbone(lm.base_model, lm.processor, self.out / "model")
        else:
            lm.save(self.out / "model")


def training_autocast(lm, precision: str):
    """bf16 autocast on whatever device the model sits (CPU here, CUDA on a GPU machine); a no-op for fp32."""
    device = next(lm.model.parameters()).device.type
    return torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")


def enable_gradient_checkpointing(lm) -> None:
    """Non-reentrant activation checkpointing on every layer of the backbone that supports it (the language model's
    decoder layers; the stock vision towers'): gradients still reach LoRA weights and latent embedding rows whose
    inputs need no grad, and dropout is replayed from the saved RNG state, so the numbers do not change."""
    base = lm.base_model
    if not getattr(base, "supports_gradient_checkpointing", False):
        raise LIVRError(f"{type(base).__name__} does not support gradient checkpointing")
    base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    base.config.use_cache = False


def build_model_for_training(backbone: str, cfg: TrainConfig):
    with torch.random.fork_rng():  # LoRA's A matrices are drawn from the global RNG: make them a function of seed
        torch.manual_seed(cfg.seed)
        config = replace(cfg.model, backbone=backbone, latent_init_seed=cfg.seed)
        return LIVRModel.from_backbone(
            backbone, config=config, lora=not cfg.full_finetune, freeze_vision=cfg.freeze_vision_tower
        )


def train(
    backbone: str,
    cfg: TrainConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    branch_from: str | Path | None = None,
):
    """Build a fresh model on ``backbone`` and train it; returns (model, final val metrics)."""
    lm = build_model_for_training(backbone, cfg)
    metrics = Trainer(lm, cfg, out_dir, progress).run(resume=resume, branch_from=branch_from)
    return lm, metrics

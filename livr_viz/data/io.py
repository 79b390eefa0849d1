"""Export synthetic samples, preview them, and load user JSONL and BLINK-layout data.

JSONL schema (one object per line)::

    {"id": str, "task": str, "image": "relative/path.png", "question": str, "choices": [str, ...],
     "answer": "A", "evidence_mask": "relative/path.png" | null, "concepts": {...} | null,
     "answer_format": "letter" | "word"}

``evidence_mask``, ``concepts`` and ``answer_format`` are optional for user data.  ``answer`` is always the
correct option's letter; ``answer_format`` says how the model is asked and answers: ``letter`` (default, BLINK's
"(A) … (B) …" choices, answered by letter) or ``word`` (the options listed and answered as words).  Images are paths
relative to the JSONL file.  Validation names the line and the field of every problem.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from livr_viz.core.config import check_one_of
from livr_viz.core.errors import LIVRError
from livr_viz.core.images import load_image
from livr_viz.data.draw import compose_panels
from livr_viz.data.tasks import (
    ANSWER_FORMATS,
    DEFAULT_ANSWER_FORMAT,
    LETTERS,
    MultipleChoice,
    Sample,
    make_sample,
    resolve_tasks,
)

REQUIRED = {"id": str, "task": str, "image": str, "question": str, "choices": list, "answer": str}


@dataclass
class Record(MultipleChoice):
    """A loaded example: synthetic, user JSONL or BLINK. Images are decoded lazily."""

    id: str
    task: str
    image_path: Path | None
    question: str
    choices: list[str]
    answer: str
    evidence_path: Path | None = None
    concepts: dict = field(default_factory=dict)
    image_obj: Image.Image | None = None
    evidence_array: np.ndarray | None = None
    answer_format: str = "letter"

    @property
    def image(self) -> Image.Image:
        return self.image_obj if self.image_obj is not None else load_image(self.image_path)

    @property
    def evidence(self) -> np.ndarray | None:
        if self.evidence_array is not None:
            return self.evidence_array
        if self.evidence_path is None:
            return None
        return np.asarray(Image.open(self.evidence_path).convert("L")) > 127


def sample_to_record(sample: Sample) -> Record:
    return Record(
        sample.id,
        sample.task,
        None,
        sample.question,
        list(sample.choices),
        sample.answer,
        concepts=dict(sample.concepts),
        image_obj=sample.image,
        evidence_array=sample.evidence,
        answer_format=sample.answer_format,
    )


def export_samples(
    tasks: str | list[str],
    split: str,
    n: int,
    seed: int,
    out: Path,
    size: int = 96,
    answer_format: str = DEFAULT_ANSWER_FORMAT,
) -> Path:
    """Write ``out/samples.jsonl`` plus ``out/images/*.png`` and ``out/evidence/*.png``; returns the JSONL path."""
    names = resolve_tasks(tasks)
    if n < 1:
        raise LIVRError(f"--n must be >= 1; got {n}")
    out = Path(out)
    try:
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / "evidence").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LIVRError(f"cannot write to {out}: {exc.strerror}") from None
    path = out / "samples.jsonl"
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for task in names:
            for i in range(n):
                s = make_sample(task, split, seed, i, size=size, answer_format=answer_format)
                s.image.save(out / "images" / f"{s.id}.png")
                Image.fromarray(s.evidence.astype(np.uint8) * 255).save(out / "evidence" / f"{s.id}.png")
                fh.write(
                    json.dumps(
                        {
                            "id": s.id,
                            "task": s.task,
                            "image": f"images/{s.id}.png",
                            "question": s.question,
                            "choices": s.choices,
                            "answer": s.answer,
                            "evidence_mask": f"evidence/{s.id}.png",
                            "concepts": s.concepts,
                            "answer_format": s.answer_format,
                        }
                    )
                    + "\n"
                )
    tmp.replace(path)
    return path


def preview(
    task: str, out: Path, n: int = 8, seed: int = 0, split: str = "train", size: int = 96, scale: int = 3
) -> Path:
    """PNG grid of ``n`` samples with evidence outlined in green and the answer + question underneath."""
    resolve_tasks([task])
    tile = size * scale
    cols = min(4, n)
    rows = -(-n // cols)
    text_h = 58
    sheet = Image.new("RGB", (cols * tile, rows * (tile + text_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i in range(n):
        s = make_sample(task, split, seed, i, size=size)
        big = s.image.resize((tile, tile), Image.NEAREST)
        edge = Image.fromarray(s.evidence.astype(np.uint8) * 255).resize((tile, tile), Image.NEAREST)
        edge = np.asarray(edge.filter(ImageFilter.FIND_EDGES)) > 0
        arr = np.asarray(big).copy()
        arr[edge] = (0, 220, 0)
        x, y = (i % cols) * tile, (i // cols) * (tile + text_h)
        sheet.paste(Image.fromarray(arr), (x, y))
        words, lines, line = s.question.split(), [], ""
        for w in words:
            if len(line) + len(w) > tile // 6:
                lines.append(line)
                line = ""
            line += w + " "
        lines.append(line)
        draw.multiline_text(
            (x + 3, y + tile + 2), "\n".join(lines[:3]) + f"\nanswer: {s.answer}  ({s.id})", fill=(0, 0, 0)
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out


class DataError(LIVRError):
    """A bad line in a JSONL file: names the line and the field."""


def _validate(obj, line_no: int, base: Path, path: Path) -> Record:
    where = f"{path.name} line {line_no}"
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key, kind in REQUIRED.items():
        if key not in obj:
            raise DataError(f"{where}: missing field '{key}'")
        if not isinstance(obj[key], kind):
            raise DataError(f"{where}: field '{key}' must be {kind.__name__}, got {type(obj[key]).__name__}")
    choices = obj["choices"]
    if not 2 <= len(choices) <= len(LETTERS) or not all(isinstance(c, str) for c in choices):
        raise DataError(f"{where}: field 'choices' must be a list of 2..{len(LETTERS)} strings")
    answer = obj["answer"].strip().strip("()")
    if answer not in LETTERS[: len(choices)]:
        raise DataError(
            f"{where}: field 'answer' must be one of {', '.join(LETTERS[: len(choices)])}; got {obj['answer']!r}"
        )
    image = (base / obj["image"]).resolve()
    if not image.is_file():
        raise DataError(f"{where}: field 'image' points to a missing file ({obj['image']})")
    evidence = obj.get("evidence_mask")
    if evidence is not None:
        if not isinstance(evidence, str):
            raise DataError(f"{where}: field 'evidence_mask' must be a path or null")
        evidence = (base / evidence).resolve()
        if not evidence.is_file():
            raise DataError(f"{where}: field 'evidence_mask' points to a missing file ({obj['evidence_mask']})")
    concepts = obj.get("concepts") or {}
    if not isinstance(concepts, dict):
        raise DataError(f"{where}: field 'concepts' must be an object or null")
    fmt = obj.get("answer_format") or "letter"
    check_one_of(f"{where}: field 'answer_format'", fmt, ANSWER_FORMATS, error=DataError)
    return Record(
        obj["id"], obj["task"], image, obj["question"], list(choices), answer, evidence, concepts, answer_format=fmt
    )


def load_jsonl(path: str | Path, skip_invalid: bool = False) -> tuple[list[Record], list[str]]:
    """Load a JSONL file (or a directory holding ``samples.jsonl``).

    Returns ``(records, errors)``.  With ``skip_invalid=False`` the first bad line raises a
    :class:`DataError` naming line and field; with ``True`` bad lines are reported in ``errors``
    and the rest loads.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "samples.jsonl"
    if not path.is_file():
        raise LIVRError(f"data file not found: {path}")
    records, errors, seen = [], [], set()
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path.name} line {line_no}: not valid JSON ({exc.msg})") from None
                record = _validate(obj, line_no, path.parent, path)
                if record.id in seen:
                    raise DataError(f"{path.name} line {line_no}: field 'id' repeats {record.id!r}")
                seen.add(record.id)
                records.append(record)
            except DataError as exc:
                if not skip_invalid:
                    raise
                errors.append(str(exc))
    return records, errors


BLINK_TASKS = {
    "Counting": "counting",
    "Jigsaw": "jigsaw",
    "Object_Localization": "object_localization",
    "Visual_Correspondence": "visual_correspondence",
    "Art_Style": "art_style",
    "Semantic_Correspondence": "semantic_correspondence",
    "Functional_Correspondence": "functional_correspondence",
    "Relative_Reflectance": "relative_reflectance",
    "Visual_Similarity": "visual_similarity",
}


def _blink_image(value, base: Path) -> Image.Image | None:
    if value is None:
        return None
    if isinstance(value, dict):  # parquet/datasets layout: {"bytes": ..., "path": ...}
        if value.get("bytes"):
            return load_image(value["bytes"])
        value = value.get("path")
        if value is None:
            return None
    if isinstance(value, (bytes, bytearray)):
        return load_image(bytes(value))
    return load_image(base / str(value))


def _blink_rows(folder: Path) -> Iterable[tuple[str, dict]]:
    files = sorted(folder.rglob("*.parquet")) + sorted(folder.rglob("*.json")) + sorted(folder.rglob("*.jsonl"))
    if not files:
        raise LIVRError(f"no BLINK files (*.parquet, *.json, *.jsonl) under {folder}")
    for f in files:
        if f.suffix == ".parquet":
            try:
                import pandas as pd

                frame = pd.read_parquet(f)
            except ImportError:
                raise LIVRError("reading parquet needs pandas + pyarrow: pip install pyarrow") from None
            for row in frame.to_dict(orient="records"):
                yield str(f), row
        elif f.suffix == ".jsonl":
            for line in f.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    yield str(f), json.loads(line)
        else:
            data = json.loads(f.read_text(encoding="utf-8"))
            for row in data if isinstance(data, list) else data.get("data", []):
                yield str(f), row


def load_blink(folder: str | Path, tile_size: int = 384) -> list[Record]:
    """Load BLINK-layout rows (``image_1..image_4``, ``question``, ``choices``, ``answer``, ``prompt``,
    task name from a ``sub_task`` / ``task`` column or the parent folder name) from a local folder.

    Several images are tiled side by side with drawn labels (``image 1``, ``image 2`` …) so single-image
    models can read them, as our synthetic multi-panel tasks do.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise LIVRError(f"BLINK folder not found: {folder}")
    records = []
    for n, (source, row) in enumerate(_blink_rows(folder)):
        base = Path(source).parent
        images = [img for img in (_blink_image(row.get(f"image_{i}"), base) for i in range(1, 5)) if img is not None]
        if not images:
            raise LIVRError(f"{source} row {n}: no image_1..image_4")
        raw_task = str(row.get("sub_task") or row.get("task") or Path(source).parent.name)
        task = BLINK_TASKS.get(raw_task, raw_task.lower())
        raw_choices = row.get("choices")
        choices = [] if raw_choices is None else list(raw_choices)  # list, or a numpy array from parquet
        answer = str(row.get("answer", "")).strip().strip("()")
        if not choices or answer not in LETTERS[: len(choices)]:
            raise LIVRError(f"{source} row {n}: needs 'choices' and an 'answer' letter, got {row.get('answer')!r}")
        records.append(
            Record(
                str(row.get("idx") or row.get("id") or f"{task}-{n}"),
                task,
                None,
                str(row.get("question", "")),
                [str(c) for c in choices],
                answer,
                concepts={},
                image_obj=tile_images(images, tile_size),
            )
        )
    return records


def tile_images(images: list[Image.Image], size: int) -> Image.Image:
    if len(images) == 1:
        return images[0]

    canvas, _ = compose_panels(images, [f"image {i + 1}" for i in range(len(images))], size)
    return canvas


def image_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()

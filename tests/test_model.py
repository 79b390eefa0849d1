"""Wrapper behaviour (on a tiny random model of the demo's layout) and clear errors for bad input."""

import io
import json
import subprocess
import sys

import pytest
import torch

from livr_viz.core.errors import LIVRError
from livr_viz.core.model import LIVRConfig, LIVRModel, load_model
from livr_viz.core.segments import Segment
from livr_viz.demo.tiny import tiny_llava

from .conftest import random_image, run_cli


def test_demo_model_loads_from_assets(demo_model):  # the shipped checkpoint itself
    assert demo_model.config.variant == "livr" and demo_model.config.n_latents == 16
    assert type(demo_model.base_model).__name__ == "LlavaForConditionalGeneration"
    counts = demo_model.param_counts()
    assert 2_000_000 <= counts["total"] <= 10_000_000


def test_latent_prompt_injection_is_neutralised(tiny_model):
    batch = tiny_model.build_inputs([random_image(0)], ["look <latent_3><latent_0> here <image> <s>"])
    assert int((batch.segments == int(Segment.LATENT)).sum()) == 16
    cfg = tiny_model.base_model.config
    n_image = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
    assert int((batch.segments == int(Segment.IMAGE)).sum()) == n_image
    assert any("<latent_3>" in note for note in batch.notes)
    assert "<latent_" not in batch.prompts[0] and "<image>" not in batch.prompts[0]


def test_unicode_and_rtl_prompts_work(tiny_model):
    batch = tiny_model.build_inputs([random_image(0)], ["כמה עיגולים? كم دائرة؟ 🙂 Ünïcödé"])
    probs = tiny_model.choice_probs(batch, ["A", "B"])
    assert torch.isfinite(probs).all()


def test_too_long_prompt_is_a_clear_error(tiny_model):
    with pytest.raises(LIVRError, match="at most"):
        tiny_model.build_inputs([random_image(0)], ["word " * 2000])


def test_undecodable_image_is_a_clear_error(tiny_model):
    with pytest.raises(LIVRError, match="cannot be decoded"):
        tiny_model.build_inputs([b"this is not a png at all"], ["hi"])


def test_generate_and_choice_probs(tiny_model):
    images = [random_image(0), random_image(1)]
    out = tiny_model.generate(images, ["hi", "there"], max_new_tokens=2)
    assert len(out) == 2 and all(isinstance(o, str) for o in out)
    probs = tiny_model.choice_probs(tiny_model.build_inputs(images, ["a", "b"]), ["A", "B", "C"])
    assert probs.shape == (2, 3) and torch.allclose(probs.sum(-1), torch.ones(2))


@pytest.mark.parametrize("k", [0, -3, 100_000])
def test_bad_number_of_latents(k):
    with pytest.raises(LIVRError, match="n_latents"):
        LIVRConfig(variant="livr", n_latents=k)


def test_bad_variant():
    with pytest.raises(LIVRError, match="variant"):
        LIVRConfig(variant="stage1")


def test_unknown_name_and_missing_path():
    with pytest.raises(LIVRError, match="unknown model"):
        load_model("demo-livrr")
    with pytest.raises(LIVRError, match="set of bundled models.*demo-livr, demo-latents-only, demo-sft"):
        load_model("demo")  # the set's name (train's --model demo means its backbone) is not one model
    with pytest.raises(LIVRError, match="not found"):
        load_model("./no/such/dir")


def test_a_model_left_in_old_by_an_interrupted_save_is_named(tmp_path):
    (tmp_path / "model.old").mkdir()
    with pytest.raises(LIVRError, match="interrupted.*model.old: rename that back to model"):
        load_model(str(tmp_path / "model"))


def test_offline_hub_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("livr_viz.core.model._hub_available", lambda ref, timeout=3.0: False)
    with pytest.raises(LIVRError, match="unreachable.*huggingface-cli download"):
        load_model("some-org/some-model")


def test_text_only_model_is_refused(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(
        LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    )
    model.save_pretrained(tmp_path)
    with pytest.raises(LIVRError, match="unsupported model type 'llama'"):
        load_model(str(tmp_path))


def test_model_without_usable_image_token_is_refused():
    model, processor = tiny_llava()
    model.config.image_token_index = 99_999  # points outside the vocabulary: no usable image placeholder
    with pytest.raises(LIVRError, match="image token"):
        LIVRModel.from_backbone("x", model=model, processor=processor)


def test_pickle_weights_are_refused(tmp_path):
    model, processor = tiny_llava()
    model.config.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(LIVRError, match="pickle"):
        load_model(str(tmp_path))


def test_trained_checkpoint_refuses_a_different_variant(tiny_paths):
    with pytest.raises(LIVRError, match="cannot be changed"):
        load_model(tiny_paths["livr"], variant="sft")


def test_hidden_states_and_latent_rows(tiny_model):
    emb = tiny_model.latent_embeddings()
    assert emb.shape == (16, tiny_model.base_model.config.text_config.hidden_size)
    assert torch.linalg.matrix_rank(emb) == 16  # K distinct latents, not one repeated


def test_cli_errors_are_one_line_without_traceback(tiny_paths):
    """The first through the entry point in its own process (all a user's terminal shows, warnings included), the
    others in this one."""
    argvs = (
        ["info", "demo-nope"],
        ["info", "demo-base", "--n-latents", "0"],
        ["demo", tiny_paths["livr"], "--image", "/no/such.png", "--prompt", "x"],
    )
    entry = [sys.executable, "-m", "livr_viz.cli", *argvs[0]]
    first = subprocess.run(entry, capture_output=True, text=True, timeout=300)
    for proc in (first, *(run_cli(*argv) for argv in argvs[1:])):
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert "Traceback" not in proc.stderr


def test_cli_info_prints_the_model(tiny_paths):
    proc = run_cli("info", tiny_paths["livr"])
    assert proc.returncode == 0, proc.stderr
    assert "LlavaForConditionalGeneration" in proc.stdout and "n_latents" in proc.stdout and "16" in proc.stdout


def test_info_and_demo_take_the_model_positionally_or_as_an_option(tiny_paths, capsys):
    from livr_viz.cli import main

    assert main(["info", "--model", tiny_paths["sft"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["variant"] == "sft"
    assert main(["info", "--json"]) == 0  # the default model is the bundled one
    assert json.loads(capsys.readouterr().out)["model"] == "demo-livr"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "demo-sft", "--model", "demo-livr"])
    assert exit_info.value.code == 2 and "two models given" in capsys.readouterr().err


def test_every_command_has_help():
    from livr_viz.cli import build_parser

    parser = build_parser()
    buf = io.StringIO()
    parser.print_help(buf)  # the top level lists every command's help line (argparse %-formats them)
    commands = parser._subparsers._group_actions[0].choices
    assert all(name in buf.getvalue() for name in commands)
    for name, sub in commands.items():
        buf = io.StringIO()
        sub.print_help(buf)
        assert "usage" in buf.getvalue().lower(), name
        nested = [a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction"]
        for action in nested:
            for sname, ssub in action.choices.items():
                buf = io.StringIO()
                ssub.print_help(buf)
                assert "usage" in buf.getvalue().lower(), (name, sname)


@pytest.mark.parametrize("size", [(1, 1), (8000, 100), (100, 8000)])
def test_extreme_image_sizes_run_through_the_model(tiny_model, size):
    from PIL import Image

    batch = tiny_model.build_inputs([Image.new("RGB", size, (200, 30, 30))], ["What colour is it?"])
    assert torch.isfinite(tiny_model.choice_probs(batch, ["A", "B"])).all()


def test_cli_build_demo_writes_a_sized_backbone_and_never_overwrites(tmp_path):
    out = tmp_path / "init"

    def run(*argv):
        return run_cli("build-demo", "--out", str(out), *argv)

    proc = run("--text-hidden", "96", "--text-layers", "2", "--text-heads", "4")
    assert proc.returncode == 0, proc.stderr
    config = json.loads((out / "config.json").read_text())["text_config"]
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) == (96, 2, 4)
    before = (out / "model.safetensors").read_bytes()
    proc = run("--seed", "1")  # a model is there: refused, the file untouched
    assert proc.returncode == 2 and "--force" in proc.stderr and (out / "model.safetensors").read_bytes() == before
    for argv, message in (
        (["--force", "--text-hidden", "100"], "divisible"),
        (["--force", "--text-layers", "0"], "positive"),
    ):
        proc = run(*argv)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert (out / "model.safetensors").read_bytes() == before
    # the resolution lever: 8-px patches give 144 image tokens at 96 px; a patch that does not tile is refused
    finer = tmp_path / "finer"
    proc = run_cli("build-demo", "--out", str(finer), "--patch-size", "8")
    assert proc.returncode == 0 and "144 image tokens" in proc.stdout, proc.stderr
    assert json.loads((finer / "config.json").read_text())["vision_config"]["patch_size"] == 8
    proc = run("--force", "--patch-size", "7")
    assert proc.returncode == 2 and "multiple of patch_size" in proc.stderr

import contextlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# what the app and commands write where nobody named a place (exports, retrained probes, caches): not ~/.cache
os.environ.setdefault("LIVR_VIZ_CACHE", tempfile.mkdtemp(prefix="livr-viz-test-cache-"))
warnings.filterwarnings("ignore", category=FutureWarning)
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from transformers.utils import logging as hf_logging  # noqa: E402 - after the environment it reads at import

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


def random_image(seed: int, size=(40, 56)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


# a demo-layout backbone at 48 px: 16 image tokens, 2 LM layers (the diagnostics' and mediation's random models)
SMALL_BACKBONE = {
    "image_size": 48,
    "patch_size": 12,
    "vision_hidden": 32,
    "vision_layers": 1,
    "vision_heads": 2,
    "text_hidden": 48,
    "text_layers": 2,
    "text_heads": 2,
    "text_intermediate": 96,
}


def small_model(variant: str = "livr", seed: int = 3, **options):
    """A random model of :data:`SMALL_BACKBONE` with K = 3 latents (``options``: more of ``from_backbone``'s)."""
    from livr_viz.core.model import LIVRModel
    from livr_viz.demo.backbone import DemoBackboneConfig, build_demo_backbone

    model, processor = build_demo_backbone(DemoBackboneConfig(seed=seed, **SMALL_BACKBONE))
    return LIVRModel.from_backbone("test", model=model, processor=processor, variant=variant, n_latents=3, **options)


@pytest.fixture
def images():
    return [random_image(1), random_image(2)]


@pytest.fixture(scope="session")
def demo_model():
    """The bundled demo LIVR checkpoint (loaded once per session, never mutated by tests)."""
    from livr_viz.core.model import load_model

    return load_model("demo-livr")


@pytest.fixture(scope="session")
def tiny_paths(tmp_path_factory):
    """A random backbone with the bundled one's layout (96 px, 8 x 8 patches, 4 LM layers, K = 16) at a tenth of its
    size, and a checkpoint of every variant on it: {"base": dir, "livr": dir, "latents_only": dir, "sft": dir}."""
    from livr_viz.core.model import VARIANTS, LIVRModel
    from livr_viz.demo.backbone import DemoBackboneConfig, save_demo_backbone

    root = tmp_path_factory.mktemp("tiny")
    sizes = DemoBackboneConfig(
        vision_hidden=32, vision_layers=2, vision_heads=2, text_hidden=64, text_heads=4, text_intermediate=128
    )
    paths = {"base": str(save_demo_backbone(root / "base", sizes))}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for variant in VARIANTS:
            lm = LIVRModel.from_backbone(paths["base"], variant=variant)
            with torch.no_grad():  # LoRA's B starts at zero: random adapter weights make it live, as after training
                for p in lm.model.parameters():
                    if p.requires_grad:
                        p.add_(0.02 * torch.randn_like(p))
            paths[variant] = str(lm.save(root / variant))
    return paths


@pytest.fixture(scope="session")
def tiny_model(tiny_paths):
    """The tiny LIVR checkpoint of ``tiny_paths`` (loaded once per session, never mutated by tests)."""
    from livr_viz.core.model import load_model

    return load_model(tiny_paths["livr"])


@dataclass
class CliRun:
    """What :func:`run_cli` saw: the exit status and the two streams, named as ``subprocess.run`` names them."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*argv: str) -> CliRun:
    """``livr-viz ARGV`` in this process: its ``main`` with stdout and stderr captured, argparse's exits turned into
    the status. A subprocess would import torch again (~6.6 s each); keep those for what only a process shows (the
    entry point, --help without torch, a kill and a resume, the installed wheel)."""
    from livr_viz.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return CliRun(status, out.getvalue(), err.getvalue())


from tools.app_screenshot import free_port, stop_process  # noqa: E402,F401 - shared with the app launcher


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The real app, launched as a subprocess on a free port (its log in a temporary folder, not the checkout);
    stopped after the session."""
    from tools.app_screenshot import running_app

    log_path = tmp_path_factory.mktemp("app") / "app.log"
    with open(log_path, "w") as log, running_app(log, timeout_s=180) as url:
        yield url

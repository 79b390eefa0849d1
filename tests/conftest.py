import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning)
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()


def random_image(seed: int, size=(40, 56)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture
def images():
    return [random_image(1), random_image(2)]


@pytest.fixture(scope="session")
def demo_model():
    """The bundled demo LIVR checkpoint (loaded once per session, never mutated by tests)."""
    from livr_viz.core.model import load_model

    return load_model("demo-livr")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_url():
    """The real app, launched as a subprocess on a free port; stopped after the session."""
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    port = _free_port()
    artifacts = Path(__file__).resolve().parent.parent / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    log = open(artifacts / "app.log", "w")
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TQDM_DISABLE": "1", "LIVR_VIZ_WARM_UMAP": "0"}
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=Path(__file__).resolve().parent.parent,
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}; see test-artifacts/app.log")
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("the app did not start within 180 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()

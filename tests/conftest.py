import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning)
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

from transformers.utils import logging as hf_logging  # noqa: E402

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
    from livr_viz.model import load_model

    return load_model("demo-livr")

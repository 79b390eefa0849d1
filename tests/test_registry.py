"""A new view is one function plus one registration: the CLI gets a command and the app a panel, with no other edit."""

import numpy as np
import pandas as pd
import pytest

from livr_viz import service as S
from livr_viz.core.errors import LIVRError
from livr_viz.service.registry import Output, Param, View


def brightness(lm, image: str, gain: float = 1.0, channel: str = "r") -> dict:
    """A throwaway view: the mean of one colour channel of the input, times ``gain``."""
    pixels = np.asarray(S.load_upload(image).convert("RGB"), dtype=float)
    value = gain * pixels[..., "rgb".index(channel)].mean()
    return {
        "markdown": f"mean {channel} = {value:.2f} (K = {lm.config.n_latents})",
        "table": pd.DataFrame({"channel": [channel], "mean": [value]}),
    }


@pytest.fixture
def registered():
    view = S.register(
        View(
            "brightness",
            brightness,
            "mean brightness of one channel",
            params=(
                Param("image", "image", required=True),
                Param("gain", "float", 1.0, help="multiply by"),
                Param("channel", default="r", choices=("r", "g", "b")),
            ),
            outputs=(Output("markdown", "markdown"), Output("table", "table")),
        )
    )
    yield view
    S.unregister(view.name)


@pytest.fixture
def red_image(tmp_path):
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 10, 0)).save(path)
    return str(path)


def test_a_registered_view_is_a_cli_command(registered, tiny_paths, red_image, tmp_path, capsys):
    from livr_viz.cli.main import build_parser, main

    args = build_parser().parse_args(["brightness", "--image", red_image, "--gain", "0.5", "--channel", "r"])
    assert (args.view, args.gain, args.channel, args.model) == ("brightness", 0.5, "r", "demo-livr")
    with pytest.raises(SystemExit):  # choices come from the registration
        build_parser().parse_args(["brightness", "--image", red_image, "--channel", "x"])
    capsys.readouterr()
    code = main(
        ["brightness", "--model", tiny_paths["livr"], "--image", red_image, "--gain", "0.5", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0 and "mean r = 100.00 (K = 16)" in out
    assert pd.read_csv(tmp_path / "table.csv")["mean"].tolist() == [100.0]


def test_a_registered_view_is_an_app_panel(registered, tiny_paths, red_image):
    from livr_viz.ui.app import build_app

    demo = build_app(tiny_paths["livr"])
    tabs = [block.label for block in demo.blocks.values() if type(block).__name__ == "Tab"]
    assert "More views" in tabs
    (fn,) = [f for f in demo.fns.values() if f.api_name == "view_brightness"]
    # the panel's inputs: the model menu, the input column's image, then the view's own gain and channel
    assert [type(c).__name__ for c in fn.inputs] == ["Dropdown", "File", "Number", "Dropdown"]
    assert [type(c).__name__ for c in fn.outputs] == ["Markdown", "Dataframe"]
    markdown, table = fn.fn(tiny_paths["livr"], red_image, 2.0, "g")
    assert markdown == "mean g = 20.00 (K = 16)" and table["mean"].tolist() == [20.0]


def test_a_view_checks_its_parameters(registered, tiny_paths, red_image):
    with pytest.raises(LIVRError, match="channel must be one of r, g, b"):
        S.run_view("brightness", tiny_paths["livr"], {"image": red_image, "channel": "x"})
    with pytest.raises(LIVRError, match="image is required"):
        S.run_view("brightness", tiny_paths["livr"], {})
    with pytest.raises(ValueError, match="registered already"):
        S.register(registered)
    assert [v.name for v in S.registered_views(cli=True)][:5] == [
        "analyze",
        "tokenmap",
        "probe",
        "faithfulness",
        "ablate",
    ]


def test_the_service_facade_names_every_public_function_of_its_modules():
    """``from livr_viz import service; service.X`` reaches every public name of the package's modules (resolved on
    first use), and importing the registry alone loads no torch (the CLI's parser is built from it)."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    modules = Path(S.__file__).parent
    for path in modules.glob("[!_]*.py"):
        if path.stem == "catalog":  # the registrations themselves, not API
            continue
        tree = ast.parse(path.read_text())
        names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        names |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        for name in sorted(n for n in names if not n.startswith("_")):
            assert name in S.__all__ and getattr(S, name) is getattr(getattr(S, path.stem), name), (path.name, name)
    code = "import sys, livr_viz.service.registry as r; r.registered_views(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"

"""The app's options: parsed before torch / gradio load, Gradio's environment conventions honoured."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from livr_viz.ui.options import parse_app_args

ROOT = Path(__file__).resolve().parent.parent


def test_flags_beat_gradio_env_which_beats_ours(monkeypatch):
    monkeypatch.setenv("LIVR_VIZ_PORT", "7001")
    monkeypatch.setenv("LIVR_VIZ_HOST", "127.0.0.2")
    assert (parse_app_args([]).port, parse_app_args([]).host) == (7001, "127.0.0.2")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7002")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    assert (parse_app_args([]).port, parse_app_args([]).host) == (7002, "0.0.0.0")
    args = parse_app_args(["--port", "7003", "--host", "127.0.0.3"])
    assert (args.port, args.host) == (7003, "127.0.0.3")


@pytest.mark.parametrize("bad", ["0", "70000", "http"])
def test_a_bad_port_is_a_usage_error(monkeypatch, bad, capsys):
    monkeypatch.setenv("GRADIO_SERVER_PORT", bad)
    with pytest.raises(SystemExit) as exc:
        parse_app_args([])
    assert exc.value.code == 2 and "port must be" in capsys.readouterr().err


def _heavy_imports(*statements: str) -> tuple[str, list[str]]:
    """Run the statements in one fresh interpreter (this test's process has torch loaded already), an exit ending
    only its own statement: what they printed, and which of torch, transformers and gradio they imported."""
    heavy = ("torch", "transformers", "gradio")
    body = [f"try:\n    {s}\nexcept SystemExit:\n    pass" for s in statements]
    code = "\n".join(["import sys", *body, f"print([m for m in {heavy!r} if m in sys.modules])"])
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    *printed, loaded = out.stdout.strip().splitlines() or [out.stderr]
    return "\n".join(printed), ast.literal_eval(loaded)


def test_help_answers_without_loading_torch_or_gradio():
    app_help = "import runpy; sys.argv = ['app.py', '--help']; runpy.run_path('app.py', run_name='__main__')"
    shown, loaded = _heavy_imports(app_help)
    assert "--concurrency" in shown and "GRADIO_SERVER_PORT" in shown and loaded == []
    cli = subprocess.run(
        [sys.executable, "-m", "livr_viz.cli", "app", "--help"], capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 0 and "--max-upload-mb" in cli.stdout


def test_the_cli_help_loads_no_torch():
    """`livr-viz --help` and a command's --help answer from argparse alone (measured 0.2 s; torch costs ~1 s)."""
    shown, loaded = _heavy_imports("from livr_viz.cli import main; main(['--help'])", "main(['analyze', '--help'])")
    assert "analyze" in shown and "--prompt" in shown and loaded == []

"""The app's options: parsed before torch / gradio load, Gradio's environment conventions honoured."""

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


def test_help_answers_without_loading_torch_or_gradio():
    code = (
        "import sys, runpy; sys.argv = ['app.py', '--help']\n"
        "try:\n    runpy.run_path('app.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('gradio' in sys.modules, 'transformers' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "--concurrency" in out.stdout and "GRADIO_SERVER_PORT" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False False"
    cli = subprocess.run(
        [sys.executable, "-m", "livr_viz.cli", "app", "--help"], capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 0 and "--max-upload-mb" in cli.stdout


def test_the_cli_help_loads_no_torch():
    """`livr-viz --help` and a command's --help answer from argparse alone (measured 0.2 s; torch costs ~1 s)."""
    code = (
        "import sys\nfrom livr_viz.cli.main import main\n"
        "for argv in (['--help'], ['analyze', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules, 'gradio' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "analyze" in out.stdout and "--prompt" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False False False"

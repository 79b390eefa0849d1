"""The package installs anywhere: the wheel carries its demo models, tokenizer, examples and probes, and works from an
empty folder outside any checkout; the repository tools stay in the repository.

The slow test builds the wheel from a copy of the sources (so a stale ``build/`` in the checkout cannot leak into it),
installs it into a fresh virtual environment and runs ``livr-viz info``, ``livr-viz analyze`` on a bundled photo,
``python -m livr_viz.ui`` and ``livr-viz app`` (each app answers its page over HTTP, then is stopped).

Offline and fast on purpose: the venv is made with ``--system-site-packages`` and the wheel installed with
``--no-deps --no-index``, so torch, transformers and gradio (2.3 GB) come from the running interpreter's
site-packages instead of a registry. The wheel's own ``livr_viz`` sits in the venv's site-packages, which come first
on ``sys.path``, so it shadows the checkout's editable install; the test checks that every command ran the wheel's
copy and read the wheel's data, not the checkout's.
"""

import os
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from livr_viz.cli.main import main

from .conftest import free_port, stop_process

REPO = Path(__file__).resolve().parents[1]
MAX_WHEEL_MB = 60
# what the wheel must carry (the tokenizer sits beside each model)
REQUIRED = (
    "livr_viz/_assets/demo-base/model.safetensors",
    "livr_viz/_assets/demo-base/tokenizer.json",
    "livr_viz/_assets/demo-livr/model/model.safetensors",
    "livr_viz/_assets/demo-livr/livr_config.json",
    "livr_viz/_assets/demo-sft/model/model.safetensors",
    "livr_viz/_assets/demo-latents-only/latents.safetensors",
    "livr_viz/_assets/examples/photo-flower.jpg",
    "livr_viz/_probes/specs/count.json",
    "livr_viz/_probes/demo-livr/count_report.json",
    "livr_viz/core/shipped.py",
    "livr_viz/ui/__main__.py",
)


@pytest.mark.parametrize("command", ["reproduce", "bench"])
def test_repo_tools_are_not_part_of_the_package(command, capsys):
    """``livr-viz reproduce`` / ``bench`` name the repository tool and the command that runs it, --help included."""
    assert main([command, "--help"]) == 2
    err = capsys.readouterr().err
    assert f"python -m tools.{command}" in err and "repository tool" in err


def test_the_package_never_reaches_into_the_checkout():
    """No module of the package imports ``tools`` or puts a folder on ``sys.path``."""
    offenders = []
    for path in (REPO / "livr_viz").rglob("*.py"):
        text = path.read_text()
        if "sys.path.insert" in text or "sys.path.append" in text or "import tools" in text or "from tools" in text:
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.tmp", "*.old")
    for name in ("livr_viz", "assets", "probes"):
        shutil.copytree(REPO / name, src / name, ignore=skip)
    dist = tmp / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(dist),
            str(src),
        ],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    (wheel,) = dist.glob("livr_viz-*.whl")
    return wheel


def _serve_and_get(cmd: list[str], port: int, cwd: Path, env: dict, timeout: float = 240) -> str:
    """Start an app, GET its page once it answers, stop it; the page's HTML (or a failure with the app's output)."""
    log = cwd / f"app-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    pytest.fail(f"{' '.join(cmd)} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                        return page.read().decode("utf-8", "replace")
                except OSError:
                    time.sleep(1)
            pytest.fail(f"{' '.join(cmd)} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
        finally:
            stop_process(proc, 30)


@pytest.mark.slow
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    wheel = _build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert not [n for n in REQUIRED if n not in names], "missing from the wheel"
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tools/", "tests/", "assets/", "probes/"))]
    size_mb = wheel.stat().st_size / 1e6
    assert 20 < size_mb <= MAX_WHEEL_MB, f"wheel is {size_mb:.1f} MB"

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    bin_dir = venv / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
        LIVR_VIZ_WARM_UMAP="0",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
    )

    def run(*args: str) -> str:
        done = subprocess.run(list(args), cwd=empty, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    where = run(
        str(bin_dir / "python"),
        "-c",
        "import livr_viz; from livr_viz.demo.bundled import ASSETS_DIR; "
        "from livr_viz.methods.probes import PROBES_DIR; print(livr_viz.__file__, ASSETS_DIR, PROBES_DIR)",
    )
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in where.split()), where

    info = run(str(bin_dir / "livr-viz"), "info", "--model", "demo-livr")
    assert "livr" in info.lower()

    photo = Path(where.split()[1]) / "examples" / "photo-flower.jpg"
    out = run(
        str(bin_dir / "livr-viz"),
        "analyze",
        "--model",
        "demo-livr",
        "--image",
        str(photo),
        "--prompt",
        "What colour is the flower? Options: red, blue.",
        "--no-tokenmap",
        "--out",
        "analysis",
    )
    assert "answer:" in out and (empty / "analysis" / "report.json").is_file()

    tool = subprocess.run(
        [str(bin_dir / "livr-viz"), "reproduce", "--out", "x"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert tool.returncode == 2 and "python -m tools.reproduce" in tool.stderr

    for cmd in ([str(bin_dir / "python"), "-m", "livr_viz.ui"], [str(bin_dir / "livr-viz"), "app", "--"]):
        port = free_port()
        page = _serve_and_get([*cmd, "--port", str(port)], port, empty, env)
        assert "gradio" in page.lower()
    assert not [p.name for p in empty.iterdir() if p.name not in ("analysis",) and not p.name.startswith("app-")]

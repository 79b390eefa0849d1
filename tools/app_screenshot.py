"""``python -m tools.app_screenshot [OUT.png]``: README's picture of the app (docs/app.png by default).

Starts ``app.py`` on a free port, opens it in Debian chromium at 1400 × 1000 (the page as a visitor first sees it,
the opening example answered and its latent tiles drawn), saves a screenshot and stops the app. Rerun it whenever
the bundled models or the page change, so the README shows what ships.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(log, timeout_s: float = 180):
    """``app.py`` on a free port, its output in the open file ``log``; yields its URL once it answers, stops it
    after (the browser tests' fixture and the screenshot share this). RuntimeError if it exits or stays silent."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "TQDM_DISABLE": "1", "LIVR_VIZ_WARM_UMAP": "0"}
    app = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + timeout_s
        while True:
            if app.poll() is not None:
                raise RuntimeError(f"the app exited with {app.returncode}; see its log ({log.name})")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError(f"the app did not answer at {url} in {timeout_s:.0f} s") from None
                time.sleep(0.5)
        yield url
    finally:
        stop_process(app, 20)


def stop_process(proc, timeout: float) -> None:
    """Ask a started app to end, and kill it if it has not within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def screenshot(out: Path, width: int = 1400, height: int = 1000, timeout_s: float = 300) -> Path:
    """Launch the app, wait until the opening example is answered and its tiles are drawn, save ``out``."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"error: {CHROMIUM} is missing (apt-get install chromium)")
    with tempfile.NamedTemporaryFile("w+", suffix=".log") as log:
        try:
            with running_app(log, timeout_s) as url, sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                page = browser.new_context(viewport={"width": width, "height": height}).new_page()
                page.set_default_timeout(timeout_s * 1000)
                page.goto(url, wait_until="load")  # not networkidle: the app keeps a stream open
                page.locator("#answer").get_by_text("Answer:").wait_for()
                page.locator("#latent-gallery img").first.wait_for()
                page.wait_for_timeout(1500)  # images decode after they attach
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
                browser.close()
        except RuntimeError as exc:
            log.seek(0)
            raise SystemExit(f"error: {exc}\n{log.read()[-2000:]}") from None
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else REPO / "docs" / "app.png"
    print(f"wrote {screenshot(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A real browser (Debian chromium via Playwright) drives the app: upload, run, every tab, screenshots."""

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from livr_viz.data import make_sample, task_names

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def page(app_url):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI (scripts/test.sh installs it with apt-get)")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(120_000)
        pg.goto(app_url)
        yield pg
        browser.close()


def test_upload_run_and_every_tab(page):
    example = Path(__file__).resolve().parent.parent / "assets" / "examples" / "counting-test-0-0-word.png"
    page.locator("#image-input input[type=file]").set_input_files(str(example))
    page.locator("#prompt textarea").fill(make_sample("counting", "test", 0, 0).prompt)
    page.wait_for_timeout(1000)
    page.locator("#run").click()
    page.get_by_text("Answer:").wait_for()
    page.locator("#latent-gallery img").first.wait_for()
    assert page.locator("#latent-gallery img").count() >= 16
    page.wait_for_function("""() => [...document.querySelectorAll('#latent-gallery img')]
                                    .every(img => img.complete && img.naturalWidth > 0)""")  # drawn, not loading
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "01-latent-attention.png"), full_page=True)
    tile = np.asarray(Image.open(io.BytesIO(page.request.get(
        page.locator("#latent-gallery img").first.get_attribute("src")).body())).convert("RGB")).astype(int)
    assert (np.abs(tile - [51, 255, 76]).sum(-1) < 12).sum() > 100  # the counted shapes' evidence, outlined
    ramp = tile[10 + 192 + 2]  # the colour bar under the map: dark at 0, bright at the top of its scale
    assert ramp[:3].sum() < 150 and ramp[-3:].sum() > 1200

    page.get_by_text("who reads this patch?").click()  # reverse lookup: click a patch of the input
    page.locator("#preview img").click(position={"x": 60, "y": 140})
    page.get_by_text("Patch (row").wait_for()
    page.locator("#patch-image img").wait_for()
    page.screenshot(path=str(ARTIFACTS / "01b-reverse-lookup.png"), full_page=True)

    for shot, tab, button, done in (
            ("02-compare", "Compare", "#compare", "#compare-sheet img"),
            ("03-token-map", "Token map", "#token-map", ".js-plotly-plot"),
            ("04-probes", "Probes", "#probes", "text=Best layer"),
            ("05-attribution", "Attribution", "#attribute", "text=Attribution of the logit"),
            ("06-ablation", "Ablation", "#ablate", "text=Switching off latents")):
        page.get_by_role("tab", name=tab).click()
        page.locator(button).click()
        page.locator(done).first.wait_for()
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)

    page.get_by_role("tab", name="Token map").click()  # linked views: a point of the dataset map loads its sample
    page.locator("#token-scope").get_by_label("dataset").check()
    page.locator("#token-map").click()
    page.get_by_text("hidden states (dataset)").wait_for()
    page.wait_for_timeout(1500)
    task = task_names()[4]  # the map's sample 4 is the fifth task's first test sample
    assert page.evaluate("""() => document.querySelector('#token-plot .js-plotly-plot').data
                                    .some(trace => trace.customdata.includes(4))""")
    page.evaluate("""() => document.querySelector('#token-plot .js-plotly-plot')
                             .emit('plotly_click', {points: [{customdata: 4}]})""")  # what plotly sends on a click
    page.wait_for_function(f"document.querySelector('#prompt textarea').value.includes("
                           f"{make_sample(task, 'test', 0, 0).prompt.splitlines()[0]!r})")
    assert task in page.locator("#image-input").inner_text()  # and its image
    page.screenshot(path=str(ARTIFACTS / "03b-linked-token-map.png"), full_page=True)

    page.get_by_role("tab", name="How it works").click()
    page.locator("#mask").click()
    page.wait_for_timeout(3000)
    page.screenshot(path=str(ARTIFACTS / "07-how-it-works.png"), full_page=True)
    page.locator("#examples img").nth(3).click()  # picking an example sets its image and question (art style first)
    page.wait_for_timeout(1500)
    assert "darker" in page.locator("#prompt textarea").input_value()
    for name in ("01-latent-attention", "02-compare", "03-token-map", "04-probes", "05-attribution", "06-ablation",
                 "07-how-it-works"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


def test_a_waiting_user_sees_the_queue_position(page, app_url):
    """Model events run one at a time: while one user's diagnosis runs, another's Run shows its place in the queue."""
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    other = context.new_page()
    other.set_default_timeout(120_000)
    other.goto(app_url)
    page.get_by_role("tab", name="Diagnostics").click()
    page.locator("#diagnose").click()
    other.locator("#image-input input[type=file]").set_input_files(str(ARTIFACTS.parent / "assets" / "examples" /
                                                                       "counting-test-0-0-word.png"))
    other.locator("#prompt textarea").fill(make_sample("counting", "test", 0, 0).prompt)
    other.wait_for_timeout(800)
    other.locator("#run").click()
    other.get_by_text("queue: 1/").first.wait_for()
    # and is served once the diagnosis is done (120 s ran out once while a training run shared the 2 cores)
    other.get_by_text("Answer:").wait_for(timeout=300_000)
    context.close()

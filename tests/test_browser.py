"""A real browser (Debian chromium via Playwright) drives the app: the first impression at laptop sizes, upload,
run, every tab, the stale mark, the chance levels and probe warnings, with screenshots in a temporary folder."""

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from livr_viz.data import make_sample, task_names

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
WAIT = 120_000  # ms: the model events share two cores with other work

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Where the screenshots go: a temporary folder, never the checkout."""
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing in CI (scripts/test.sh installs it with apt-get)")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


def open_app(browser, app_url, width: int, height: int):
    """A fresh visitor at ``width`` × ``height`` (its own browser context), the page loaded."""
    context = browser.new_context(viewport={"width": width, "height": height})
    pg = context.new_page()
    pg.set_default_timeout(WAIT)
    pg.goto(app_url, wait_until="load")
    return pg


@pytest.fixture(scope="module")
def page(browser, app_url):
    pg = open_app(browser, app_url, 1400, 1000)
    yield pg
    pg.context.close()


def caption_texts(pg, gallery: str) -> list[str]:
    return [t.strip() for t in pg.locator(f"{gallery} .caption-label").all_inner_texts()]


@pytest.mark.parametrize("width, height", [(1280, 720), (1440, 900)])
def test_first_impression(browser, app_url, shots, width, height):
    """A new visitor on a laptop sees, without scrolling: what LIVR, latents-only and SFT are, the first example
    loaded and answered (with its tiles below), the prompt and Run, and every example by a readable name, marked
    ✔ / ✘ where the selected model answers its ground truth right / wrong."""
    from livr_viz import service as S

    pg = open_app(browser, app_url, width, height)
    answer = pg.locator("#answer")
    answer.get_by_text("Answer:").wait_for()
    assert "ground truth" in answer.inner_text()  # the first example (art style), answered, no click needed
    pg.locator("#latent-gallery img").first.wait_for()
    assert pg.locator("#latent-gallery img").count() >= 16
    intro = pg.locator("#intro").inner_text()
    assert all(word in intro for word in ("LIVR", "latent tokens", "latents-only", "SFT", "bottleneck"))
    for part in ("#title", "#intro", "#examples", "#prompt", "#run", "#answer"):
        box = pg.locator(part).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, (part, box)
    assert pg.locator("#run").is_visible() and pg.locator("#intro").is_visible()

    captions = caption_texts(pg, "#examples")
    names = [re.sub(r"^[✔✘] ", "", c) for c in captions]
    picked = len(S.teaching_records())  # examples picked for teaching (★) come first, said so beside the answer
    assert all(n.startswith("★ ") for n in names[:picked]) and not any("★" in n for n in names[picked:])
    assert ("Picked for teaching" in answer.inner_text()) == bool(S.teaching_for("demo-livr"))
    names = names[picked:]  # then each task's first test sample, not picked
    assert names[: len(task_names())] == [t.replace("_", " ") for t in S.example_tasks()]
    assert all(n.startswith("photo: ") for n in names[len(task_names()) :])
    marks = [c[0] if c[0] in "✔✘" else None for c in captions]
    assert marks == [None if v is None else "✔" if v else "✘" for v in S.example_verdicts("demo-livr")]
    assert "✔" in marks and "✘" in marks  # the shipped model gets some right and some wrong
    assert pg.evaluate("""() => [...document.querySelectorAll('#examples .caption-label')]  // not cut off
                               .every(c => c.scrollWidth <= c.clientWidth + 1
                                           && c.scrollHeight <= c.clientHeight + 1)""")
    assert pg.evaluate("""() => [...document.querySelectorAll('#examples img')]
                               .every(img => getComputedStyle(img).objectFit === 'contain')""")  # not cropped
    pg.screenshot(path=str(shots / f"00-first-impression-{width}x{height}.png"))
    pg.context.close()


def test_evidence_captions_carry_their_chance_level(browser, app_url):
    """Every tile of a synthetic sample says how much of its attention lies in the evidence beside the evidence's
    share of the image (a uniform map's score) and their ratio; the legend says what the colours and numbers are;
    a clicked tile is drawn again at full resolution."""
    from livr_viz import service as S

    pg = open_app(browser, app_url, 1280, 720)
    pg.locator("#latent-gallery .caption-label").first.wait_for()
    captions = caption_texts(pg, "#latent-gallery")
    assert len(captions) >= 16
    for caption in captions:
        assert re.search(r"in evidence \d+% of \d+% area", caption) and re.search(r"lift \d+\.\d\d", caption), caption
    legend = pg.locator("#tile-legend").inner_text()
    assert all(word in legend for word in ("image", "text", "latents", "green outline", "lift"))
    pg.locator("#latent-gallery img").nth(2).click()  # click to enlarge: drawn again at 576 px, not scaled up
    pg.locator("#enlarged-tile").scroll_into_view_if_needed()
    pg.wait_for_function("document.querySelector('#enlarged-tile img')?.naturalWidth > 0")
    assert pg.evaluate("document.querySelector('#enlarged-tile img').naturalWidth") == S.ENLARGED_TILE
    assert "latent 2 ·" in pg.locator("#enlarged-tile").inner_text()
    pg.context.close()


def test_typing_a_layer_marks_the_tiles_stale_until_redrawn(browser, app_url, shots):
    pg = open_app(browser, app_url, 1280, 720)
    pg.locator("#latent-gallery img").first.wait_for()
    note = pg.locator("#view-note")
    assert "layers all" in note.inner_text() and "stale" not in note.inner_text()
    box = pg.get_by_label("layers (all or 0,2-3)")
    box.click()
    box.press("Control+a")
    box.type("1")
    pg.wait_for_function("document.querySelector('#view-note').innerText.includes('stale')")
    assert "stale" in note.get_attribute("class")
    assert float(pg.evaluate("getComputedStyle(document.querySelector('#latent-gallery img')).opacity")) < 0.5
    assert "still for layers all" in note.inner_text() and "redraw for layers 1" in note.inner_text()
    pg.screenshot(path=str(shots / "08-stale.png"))
    box.press("Enter")
    pg.wait_for_function("""() => { const t = document.querySelector('#view-note').innerText;
                                    return !t.includes('stale') && t.includes('layers 1'); }""")
    assert "stale" not in note.get_attribute("class")
    assert float(pg.evaluate("getComputedStyle(document.querySelector('#latent-gallery img')).opacity")) == 1
    assert all("image" in c for c in caption_texts(pg, "#latent-gallery"))  # the redrawn tiles are there
    pg.context.close()


def test_upload_run_and_every_tab(page, shots):
    from livr_viz import service as S

    example = ROOT / "assets" / "examples" / "counting-test-0-0-word.png"
    page.locator("#image-input button[aria-label=Clear]").click()  # the page opens with the first example loaded
    page.locator("#image-input input[type=file]").set_input_files(str(example))
    page.locator("#prompt textarea").fill(make_sample("counting", "test", 0, 0).prompt)
    page.wait_for_timeout(1000)
    page.locator("#run").click()
    page.wait_for_function("""() => document.querySelector('#answer').innerText.includes('Answer:')
                                    && document.querySelector('#answer').innerText.includes('counting')""")
    page.wait_for_function("""() => { const imgs = [...document.querySelectorAll('#latent-gallery img')];
                                      return imgs.length >= 16
                                             && imgs.every(img => img.complete && img.naturalWidth > 0); }""")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(shots / "01-latent-attention.png"), full_page=True)
    tile = np.asarray(
        Image.open(
            io.BytesIO(page.request.get(page.locator("#latent-gallery img").first.get_attribute("src")).body())
        ).convert("RGB")
    ).astype(int)
    assert (np.abs(tile - [51, 255, 76]).sum(-1) < 12).sum() > 100  # the counted shapes' evidence, outlined
    ramp = tile[10 + 192 + 2]  # the colour bar under the map: dark at 0, bright at the top of its scale
    assert ramp[:3].sum() < 150 and ramp[-3:].sum() > 1200

    page.get_by_text("who reads this patch?").click()  # reverse lookup: click a patch of the input
    page.locator("#preview img").click(position={"x": 60, "y": 140})
    page.get_by_text("Patch (row").wait_for()
    page.locator("#patch-image").scroll_into_view_if_needed()  # its img loads lazily: only near the viewport
    page.locator("#patch-image img").wait_for()
    page.screenshot(path=str(shots / "01b-reverse-lookup.png"), full_page=True)

    for shot, tab, button, done in (
        ("02-compare", "Compare", "#compare", "#compare-sheet img"),
        ("03-token-map", "Token map", "#token-map", ".js-plotly-plot"),
        ("04-probes", "Probes", "#probes", "text=Best layer"),
        ("05-attribution", "Attribution", "#attribute", "text=Attribution of the logit"),
        ("06-ablation", "Ablation", "#ablate", "text=Switching off latents"),
    ):
        page.get_by_role("tab", name=tab).click()
        page.locator(button).click()
        if done.startswith("#"):  # an image: lazily loaded, so bring its frame into view
            page.locator(done.split()[0]).scroll_into_view_if_needed()
        page.locator(done).first.wait_for()
        page.screenshot(path=str(shots / f"{shot}.png"), full_page=True)
        if tab == "Compare":  # the variants and metrics explained; the sheet lossless, its table with chance levels
            intro = page.locator("#compare-intro").inner_text()
            assert all(w in intro for w in ("latents-only", "SFT", "lift", "pointing game", "area", "chance"))
            assert ".png" in page.locator("#compare-sheet img").get_attribute("src")
            shown = page.evaluate("""() => { const img = document.querySelector('#compare-sheet img');
                                             return img.clientWidth / img.naturalWidth; }""")
            assert shown * S.COMPARE_FONT >= 11  # the per-tile scales' labels, at the size they are shown
            assert "evidence area" in page.locator("#compare-table").inner_text()
        if tab == "Probes":  # the bundled probes of the shipped model do not beat their baselines: said so
            summary = page.locator("#probe-summary").inner_text()
            assert "does not beat" in summary and "says nothing about what the latents themselves encode" in summary

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
    page.wait_for_function(
        f"document.querySelector('#prompt textarea').value.includes("
        f"{make_sample(task, 'test', 0, 0).prompt.splitlines()[0]!r})"
    )
    assert task in page.locator("#image-input").inner_text()  # and its image
    page.screenshot(path=str(shots / "03b-linked-token-map.png"), full_page=True)

    page.get_by_role("tab", name="How it works").click()
    page.locator("#mask").click()
    page.wait_for_timeout(3000)
    page.screenshot(path=str(shots / "07-how-it-works.png"), full_page=True)
    from livr_viz import service as S

    picked = len(S.teaching_records())  # the examples picked for teaching come first, then art style's, ...
    page.locator("#examples img").nth(picked + 3).click()  # picking an example sets its image and question
    page.wait_for_timeout(1500)
    assert "darker" in page.locator("#prompt textarea").input_value()
    for name in (
        "01-latent-attention",
        "02-compare",
        "03-token-map",
        "04-probes",
        "05-attribution",
        "06-ablation",
        "07-how-it-works",
    ):
        assert (shots / f"{name}.png").stat().st_size > 10_000


def test_a_quick_run_does_not_wait_behind_a_diagnosis(page, app_url):
    """Long jobs have their own queue (livr_viz.ui.queues): while one user's diagnosis runs, another's Run and map of
    this image's tokens are answered at once, before the diagnosis ends, and the diagnosis still finishes."""
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})
    other = context.new_page()
    other.set_default_timeout(120_000)
    other.goto(app_url)
    # the other user's input is ready first, so their Run starts while the diagnosis runs
    other.locator("#image-input button[aria-label=Clear]").click()
    other.locator("#image-input input[type=file]").set_input_files(
        str(ROOT / "assets" / "examples" / "counting-test-0-0-word.png")
    )
    other.locator("#prompt textarea").fill(make_sample("counting", "test", 0, 0).prompt)
    other.wait_for_timeout(800)
    page.get_by_role("tab", name="Diagnostics").click()
    page.locator("#diagnose").click()
    page.wait_for_timeout(200)
    other.locator("#run").click()
    other.get_by_text("Answer:").wait_for()
    assert page.get_by_text("Redundancy:").count() == 0  # the diagnosis (tens of seconds) has not ended yet
    # a map of this image is a quick view too (the dataset's is a long job)
    other.get_by_role("tab", name="Token map").click()
    other.locator("#token-map").click()
    other.locator("#token-plot .js-plotly-plot").wait_for()
    assert page.get_by_text("Redundancy:").count() == 0
    page.get_by_text("Redundancy:").first.wait_for(timeout=300_000)  # and ends (a training run may share the cores)
    context.close()

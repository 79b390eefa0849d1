"""gradio_client tests against the launched app: every main endpoint, errors, and that it keeps serving."""

import json
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from livr_viz.data import make_sample

EXAMPLE = str(Path(__file__).resolve().parent.parent / "assets" / "examples" / "counting-test-0-0-word.png")
SAMPLE = make_sample("counting", "test", 0, 0)  # the first example, in the demo models' word format
PROMPT = SAMPLE.prompt
VIEW = ("all", "mean", "mean", "per_latent", 0.55)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_analyze(client):
    md, label, gallery, bars, preview = client.predict(
        "demo-livr", handle_file(EXAMPLE), PROMPT, "full", *VIEW, api_name="/analyze"
    )
    assert "Answer:" in md and f"ground truth **{SAMPLE.target}**" in md
    assert {c["label"] for c in label["confidences"]} == set(SAMPLE.options)
    assert len(gallery) == 16 and all(Path(item["image"]).exists() for item in gallery)
    assert gallery[3]["caption"].startswith("latent 3 · image ") and "% · in evidence " in gallery[3]["caption"]
    assert [row[0] for row in bars["data"]] == [f"{i:02d}" for i in range(16)]


def test_compare_shows_three_variants_and_evidence(client):
    table, sheet = client.predict("demo-livr", handle_file(EXAMPLE), PROMPT, "full", "mean", 0.55, api_name="/compare")
    rows = table["data"]
    assert [r[0] for r in rows] == ["demo-livr", "demo-latents-only", "demo-sft"]
    assert "mass in evidence" in table["headers"] and "pointing game" in table["headers"]
    # one lossless sheet, 8 tiles of 192 px a row: LIVR and latents-only 2 rows of latents each, SFT its answer row,
    # then the evidence (a heatmap tile is 192 x 238 with its split bar, colour bar and caption room)
    image = Image.open(sheet)
    assert image.format == "PNG" and image.size[0] == 8 * 192
    assert image.size[1] >= 5 * 238 + 192


def test_compare_uses_the_set_of_the_selected_model(client, tmp_path):
    sample = make_sample("art_style", "test", 0, 0)
    path = tmp_path / f"{sample.id}.png"
    sample.image.save(path)
    table, _ = client.predict(
        "demo-sft", handle_file(str(path)), sample.prompt, "full", "mean", 0.55, api_name="/compare"
    )
    assert [r[0] for r in table["data"]] == ["demo-livr", "demo-latents-only", "demo-sft"]
    assert [r[table["headers"].index("truth")] for r in table["data"]] == [sample.target] * 3


def test_token_map_probes_attribution_ablation_mask(client):
    plot = client.predict(
        "demo-livr", handle_file(EXAMPLE), PROMPT, "full", "pca", 4, "this image", 12, "segment", api_name="/token_map"
    )
    assert plot["type"] == "plotly"
    plot = client.predict(
        "demo-livr", handle_file(EXAMPLE), PROMPT, "full", "pca", 2, "dataset", 4, "task", api_name="/token_map"
    )
    assert plot["type"] == "plotly"
    md, curves, table, reading = client.predict(
        "demo-livr", "count", handle_file(EXAMPLE), PROMPT, "full", False, api_name="/probes"
    )
    assert "Best layer" in md and len(table["data"]) == 5 and reading["confidences"]
    picture, latent_bars, attr_md = client.predict(
        "demo-livr", handle_file(EXAMPLE), PROMPT, "full", "", "saliency", api_name="/attribution"
    )
    assert Path(picture).exists() and "saliency" in attr_md
    ab_md, before_after, effects = client.predict(
        "demo-livr", handle_file(EXAMPLE), PROMPT, "full", ["0", "5"], "zero", -1, api_name="/ablation"
    )
    assert "Switching off latents [0, 5]" in ab_md
    mask = client.predict("demo-livr", handle_file(EXAMPLE), PROMPT, "bottleneck", api_name="/mask")
    assert mask["type"] == "matplotlib"


def test_export_zip_reproduces_the_settings_of_every_tab_run(client):
    client.predict("demo-livr", handle_file(EXAMPLE), PROMPT, "full", "mean", 0.55, api_name="/compare")
    client.predict("demo-livr", handle_file(EXAMPLE), PROMPT, "bottleneck", api_name="/mask")
    path = client.predict(
        "demo-livr", handle_file(EXAMPLE), PROMPT, "bottleneck", "0,3", "1", "max", "global", 0.4, api_name="/export"
    )
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        assert {"report.json", "settings.json", "latent_heatmaps.png", "image.png"} <= names
        assert len([n for n in names if n.startswith("latents/")]) == 16
        settings = json.loads(zf.read("settings.json"))
        assert settings["stage"] == "bottleneck" and settings["layers"] == "0,3" and settings["aggregation"] == "max"
        assert {"compare/heatmaps.png", "mask/mask.png"} <= names  # the other tabs this session ran
        report = json.loads(zf.read("report.json"))
        assert [row["model"] for row in report["tabs"]["compare"]["table"]] == [
            "demo-livr",
            "demo-latents-only",
            "demo-sft",
        ]
        assert settings["tabs"]["mask"]["stage"] == "bottleneck" and settings["tabs"]["compare"]["stage"] == "full"


def test_new_sample(client):
    path, prompt = client.predict("jigsaw", "demo-livr", api_name="/new_sample")
    assert Path(path).name.startswith("jigsaw-test-777-") and Path(path).stem.endswith("-word")
    assert "Options: top, bottom." in prompt  # the word format of the selected model


def test_errors_are_clear_and_the_app_keeps_serving(client, tmp_path):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="prompt is empty"):
        client.predict("demo-livr", handle_file(EXAMPLE), "   ", "full", *VIEW, api_name="/analyze")
    junk = tmp_path / "photo.png"
    junk.write_bytes(b"definitely not an image")
    with pytest.raises(AppError, match="cannot be decoded") as exc:
        client.predict("demo-livr", handle_file(str(junk)), PROMPT, "full", *VIEW, api_name="/analyze")
    assert "'photo.png'" in str(exc.value) and "gradio" not in str(exc.value) and " at 0x" not in str(exc.value)
    with pytest.raises(AppError, match="layers must be in 0..3"):
        client.predict(
            "demo-livr",
            handle_file(EXAMPLE),
            PROMPT,
            "full",
            "7",
            "mean",
            "mean",
            "per_latent",
            0.5,
            api_name="/analyze",
        )
    with pytest.raises(AppError, match="unknown model"):
        client.predict("no-such-model", handle_file(EXAMPLE), PROMPT, "full", *VIEW, api_name="/analyze")
    with pytest.raises(AppError, match="no latents"):
        client.predict("demo-sft", handle_file(EXAMPLE), PROMPT, "full", ["0"], "zero", -1, api_name="/ablation")
    md, *_ = client.predict("demo-livr", handle_file(EXAMPLE), PROMPT, "full", *VIEW, api_name="/analyze")
    assert "Answer:" in md


def test_free_form_questions_get_a_short_answer_and_user_text_stays_inert(client):
    md, label, *_ = client.predict(
        "demo-livr",
        handle_file(EXAMPLE),
        "What colour is the star? <s> *x* <latent_3>",
        "full",
        *VIEW,
        api_name="/analyze",
    )
    answer = md.split("**")[1]
    assert "(free-form, greedy)" in md and answer and "</s>" not in answer
    assert "&lt;s&gt;" in md and "&lt;latent\\_3&gt;" in md  # the notes name the removed tokens, escaped
    assert not label or not label.get("confidences")  # no probability bar of a special token
    # the ground truth is the sample's only for its own question
    assert "ground truth" not in md


def test_diagnostics_tab(client):
    md, table, flow, effects, deletion, redundancy = client.predict(
        ["demo-livr", "demo-sft"], "counting", 2, api_name="/diagnose"
    )
    assert "uses its latents" in md and "Deletion / insertion" in md and "effective number" in md
    assert [row[0] for row in table["data"]] == ["demo-livr", "demo-sft"]
    assert all(fig["type"] == "matplotlib" for fig in (flow, effects, deletion, redundancy))


def test_filmstrip_and_aligned_token_map(client):
    film = client.predict("demo-livr", handle_file(EXAMPLE), PROMPT, "full", api_name="/filmstrip")
    assert film["type"] == "matplotlib"
    aligned = client.predict("demo-livr", "full", "pca", 4, 3, "segment", api_name="/aligned_token_map")
    assert aligned["type"] == "matplotlib"


def _defaults(client, endpoint: str, info: dict) -> list:
    """An endpoint's inputs as the page opens: each component's default value (files: the first example, which the
    page opens on)."""
    from livr_viz import service as S

    first = S.ensure_examples()[0]
    args = []
    for p in info["parameters"]:
        if p["component"] in ("File", "Image"):
            args.append(handle_file(first))
        else:
            assert p["parameter_has_default"], f"{endpoint}: {p['label']} has no default"
            args.append(p["parameter_default"])
    return args


def _empty(value) -> bool:
    if value is None or value == "" or value == [] or value == {}:
        return True
    if isinstance(value, dict) and "data" in value and "headers" in value:  # a table
        return not value["data"]
    if isinstance(value, dict) and "confidences" in value:  # a label
        return not value["confidences"]
    return False


def test_every_endpoint_answers_with_its_defaults(client):
    """Press every named endpoint the app exposes with the values its components open with (the buttons a new user
    presses first); each returns without an error and with nothing empty."""
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/analyze", "/compare", "/probes", "/diagnose", "/attribution", "/ablation", "/export"} <= set(api)
    for endpoint, info in api.items():
        result = client.predict(*_defaults(client, endpoint, info), api_name=endpoint)
        outputs = list(result) if len(info["returns"]) > 1 else [result]
        assert len(outputs) == len(info["returns"]), endpoint
        empty = [r["label"] for r, out in zip(info["returns"], outputs) if _empty(out)]
        assert not empty, f"{endpoint} returned nothing for {empty}"


def test_a_typed_path_outside_the_roots_gets_one_message_and_is_not_loaded(client):
    """The app was started without --model-root: a folder that exists and one that does not read the same."""
    from gradio_client.exceptions import AppError

    messages = []
    for name in ("/root/.ssh", "/no/such/folder", str(Path(__file__).resolve().parent.parent / "assets" / "demo-sft")):
        with pytest.raises(AppError) as exc:
            client.predict(name, handle_file(EXAMPLE), PROMPT, "full", *VIEW, api_name="/analyze")
        messages.append(str(exc.value))
    assert len(set(messages)) == 1 and "unknown model" in messages[0] and ".ssh" not in messages[0]
    for name in ("/root/.ssh", "/no/such/folder"):  # Diagnostics' menu refuses values it does not offer, unread
        with pytest.raises(AppError, match="unknown model|not in the list of choices") as exc:
            client.predict([name], "counting", 2, api_name="/diagnose")
        assert "config.json" not in str(exc.value) and "model directory" not in str(exc.value)


@pytest.fixture
def own_model_app(tiny_paths, monkeypatch):
    """The app as `python app.py --model DIR --model-root ROOT` builds it, in this process, on a tiny model that has
    no bundled probes (probe training cut to 16 samples a task)."""
    from livr_viz import service as S
    from livr_viz.ui.app import build_app
    from livr_viz.ui.options import parse_app_args

    root = Path(tiny_paths["livr"]).parent
    args = parse_app_args(["--model", tiny_paths["livr"], "--model-root", str(root)])
    monkeypatch.setattr(S.models, "ACCESS", S.ModelAccess())
    monkeypatch.setattr(S.probes, "PROBE_TRAIN_SAMPLES", 16)
    S.restrict_models([args.model], args.model_root)
    demo = build_app(args.model)
    demo.queue()
    demo.launch(
        prevent_thread_lock=True,
        server_port=None,
        quiet=True,
        show_error=True,
        allowed_paths=[str(S.EXAMPLES_DIR), str(S.scratch_dir())],
    )
    try:
        yield demo, Client(demo.local_url, verbose=False), tiny_paths
    finally:
        demo.close()


def test_the_model_the_app_started_with_works_in_every_tab(own_model_app):
    """--model DIR is offered in the model menu and in Diagnostics, the API accepts it there, its probes train
    through gr.Progress ('train again' failed with "unexpected keyword argument 'desc'"), and a path under the
    --model-root loads while the views never print the server path."""
    import gradio as gr

    demo, client, paths = own_model_app
    model = paths["livr"]
    menus = [
        b
        for b in demo.blocks.values()
        if isinstance(b, (gr.Dropdown, gr.CheckboxGroup))
        and b.label in ("models", "model (demo name, local path or hub id)")
    ]
    assert len(menus) == 2 and all(model in [c[1] for c in menu.choices] for menu in menus)
    md, table, *_ = client.predict([model], "counting", 2, api_name="/diagnose")
    assert [row[0] for row in table["data"]] == ["livr"] and model not in md
    art = make_sample("art_style", "test", 0, 0)
    image = str(Path(EXAMPLE).with_name(f"{art.id}.png"))
    for retrain in (True, False):
        md, curves, table, reading = client.predict(
            model, "style", handle_file(image), art.prompt, "full", retrain, api_name="/probes"
        )
        assert "trained" in md and len(table["data"]) == 5 and reading["confidences"]
        assert str(Path(model).parent) not in md
    md, *_ = client.predict(paths["sft"], handle_file(image), art.prompt, "full", *VIEW, api_name="/analyze")
    assert "Answer:" in md and str(Path(model).parent) not in md

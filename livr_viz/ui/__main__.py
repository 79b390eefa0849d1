"""``python -m livr_viz.ui``: serve the app, as ``livr-viz app`` and the repository's ``app.py`` do (same options;
``--help`` answers before torch and gradio load)."""

from livr_viz.ui.options import parse_app_args


def main(argv: list[str] | None = None) -> None:
    args = parse_app_args(argv)
    from livr_viz.ui.app import serve

    serve(args)


if __name__ == "__main__":
    main()

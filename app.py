"""Entry point of the Gradio app: ``python app.py`` (same as ``livr-viz app``).

Options are parsed before torch and gradio load, so ``python app.py --help`` answers at once.
"""

from livr_viz.ui.options import parse_app_args

if __name__ == "__main__":
    args = parse_app_args()
    from livr_viz.ui.app import serve

    serve(args)

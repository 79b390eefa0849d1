"""Entry point of the Gradio app: ``python app.py`` (same as ``livr-viz app``)."""

from livr_viz.ui.app import main

if __name__ == "__main__":
    main()

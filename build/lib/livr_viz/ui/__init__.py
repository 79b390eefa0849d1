"""Gradio UI (the only part of livr_viz that imports gradio)."""

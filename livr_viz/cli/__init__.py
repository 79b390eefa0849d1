"""The ``livr-viz`` command line: ``main`` parses and dispatches, one module per command group."""

from livr_viz.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

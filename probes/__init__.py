"""Data only: concept specs and bundled probe weights. Built into the wheel as ``livr_viz._probes`` (setup.py)."""

"""ring_probe.py with the option rings drawn at another radius: python ring_probe_radius.py RADIUS BACKBONE..."""
import functools
import runpy
import sys
from pathlib import Path

from livr_viz.data import draw as D

D.draw_ring = functools.partial(D.draw_ring, r=float(sys.argv.pop(1)))  # the generators look it up on the module
runpy.run_path(str(Path(__file__).with_name("ring_probe.py")), run_name="__main__")

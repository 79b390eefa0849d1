"""The ring probe (tools/experiments/tower_probe.py --concept ring) with the option rings drawn at another radius:

python tools/experiments/frozen-tower/ring_probe_radius.py 6 BACKBONE --seed 3 --n-train 300 --n-val 150
"""

import functools
import sys
from pathlib import Path

from livr_viz.data import draw as D

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tower_probe

D.draw_ring = functools.partial(D.draw_ring, r=float(sys.argv.pop(1)))  # the generators look it up on the module
tower_probe.main(sys.argv[1:] + ["--concept", "ring"])

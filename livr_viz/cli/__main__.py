import sys

from livr_viz.cli import main

sys.exit(main())

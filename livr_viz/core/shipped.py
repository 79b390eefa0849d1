"""Where the data that ships with the package lies: the demo models, tokenizer and examples (``assets/``) and the
bundled probes (``probes/``).

The repository keeps both folders at its top level; the build maps them into the package as the data packages
``livr_viz._assets`` and ``livr_viz._probes`` (``setup.py``), so an installed wheel carries them and an editable
install maps the same names onto the checkout's folders. Found through the import system (importlib), not by
counting folders above this file, so the package never depends on sitting inside a clone; the repository layout is
the fallback for a checkout imported straight from its source tree (no install, or one made before the mapping
existed). Import-light: no torch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

# data package -> the repository folder it is built from (setup.py maps the same pairs)
SHIPPED = {"livr_viz._assets": "assets", "livr_viz._probes": "probes"}


def shipped_dir(package: str) -> Path:
    """The folder of a data package of :data:`SHIPPED`: installed, editable, or the checkout's own."""
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:  # the parent package cannot be found: only a broken install gets here
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        if Path(location).is_dir():
            return Path(location)
    return Path(__file__).resolve().parents[2] / SHIPPED[package]

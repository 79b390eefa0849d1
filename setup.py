"""The one build step pyproject.toml cannot say: map the repository's top-level data folders into the package.

``assets/`` (demo models, tokenizer, examples) and ``probes/`` (concept specs, bundled probe weights) stay where the
repository layout puts them; the wheel carries them as the data-only packages ``livr_viz._assets`` and
``livr_viz._probes`` (whole folders, so a model added to assets/ ships without touching this file), and an editable
install maps the same names onto the checkout. ``livr_viz/core/shipped.py`` finds them. Everything else about the
build is in pyproject.toml."""

from setuptools import find_packages, setup

DATA_PACKAGES = {"livr_viz._assets": "assets", "livr_viz._probes": "probes"}  # = livr_viz.core.shipped.SHIPPED

setup(
    packages=find_packages(include=["livr_viz", "livr_viz.*"]) + list(DATA_PACKAGES),
    package_dir=DATA_PACKAGES,
    package_data={name: ["**/*"] for name in DATA_PACKAGES},
    exclude_package_data={name: ["**/__pycache__/*", "**/*.pyc", "**/*.tmp/*", "**/*.old/*"] for name in DATA_PACKAGES},
)

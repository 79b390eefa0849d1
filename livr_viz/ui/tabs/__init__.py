"""The app's tabs, one module each: a ``build(page, …)`` that lays out the tab, wires its events and returns its
components (see :class:`livr_viz.ui.common.Page`)."""

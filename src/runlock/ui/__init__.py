"""The web UI (``runlock ui``; ``runlock server`` mounts the same app behind its login).

``create_app(open_store, authorize=None)`` in ``app``; what each page shows in ``pages``; the
runs table's keyset paging in ``listing``; downsampled chart series in ``charts``; the lineage
drawing in ``svg``. Templates and the vendored htmx and uPlot (see static/vendor/VERSIONS) ship
in the package.
"""

from runlock.ui.app import create_app

__all__ = ["create_app"]

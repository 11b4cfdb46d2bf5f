"""OneScreen's Dash application: `create_app(settings)` builds it; `server` is the WSGI entry point.

    gunicorn 'app:server'          # production web workers (run `onescreen.py scheduler` once beside them)
    python onescreen.py serve      # everything in one process, as `make run` does
"""

from __future__ import annotations

import os

import dash
from dash import Dash

from cityops.catalog import load_catalog
from cityops.settings import PROJECT_ROOT, Settings


def create_app(settings: Settings | None = None) -> Dash:
    settings = settings or Settings.from_env()
    catalog = load_catalog(settings.catalog_path)
    # Dash's dev tools would ask the internet for newer versions; city intranets have none.
    os.environ.setdefault("DASH_DISABLE_VERSION_CHECK", "true")

    import connectors  # noqa: F401  (registers connector types before their config is read)
    from callbacks import register_callbacks
    from callbacks.context import CONFIG_KEY, ScreenContext
    from callbacks.geometry import register_geometry_routes
    from connectors.config import load_connectors
    from layouts.page import build_page

    intervals = {i.name: i.interval_seconds for i in load_connectors(settings.connectors_path) if i.enabled}
    app = Dash(
        __name__,
        title=f"{settings.city_name_zh if settings.language == 'zh' else settings.city_name_en} · OneScreen",
        update_title=None,  # no "Updating…" flicker in the tab title on every refresh
        assets_folder=str(PROJECT_ROOT / "assets"),
        serve_locally=True,
        compress=False,
    )
    app.server.config[CONFIG_KEY] = ScreenContext(settings, catalog, intervals)
    register_geometry_routes(app.server)
    app.layout = build_page(settings, catalog)
    register_callbacks()

    return app


def __getattr__(name: str):
    """`app:server` for WSGI servers, built on first access rather than at import."""
    if name == "server":
        return create_app().server
    raise AttributeError(name)

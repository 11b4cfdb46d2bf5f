"""OneScreen's Dash application: `create_app(settings)` builds it; `server` is the WSGI entry point.

    gunicorn 'app:server'          # production web workers (run `onescreen.py scheduler` once beside them)
    python onescreen.py serve      # everything in one process, as `make run` does
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dash_leaflet
from dash import Dash

from cityops.catalog import load_catalog
from cityops.settings import PROJECT_ROOT, Settings


# dash-leaflet's lazily loaded chunk that draws GeoJSON layers: the page asks for it once the map has rendered.
GEOJSON_CHUNK = Path(dash_leaflet.__file__).parent / "async-GeoJSON.js"


# Dash sends @babel/polyfill (core-js 2) to every browser. The browsers Dash supports need none of it, and on
# them it still swaps the native Promise for its own, which every callback then runs through: the screen
# loads ~35 ms sooner without it (bench/first_screen.py). Of all it defines, Dash's renderer and dcc use one
# thing, `regeneratorRuntime`, which assets/vendor/regenerator-runtime.js provides (2 kB compressed).
BABEL_POLYFILL = re.compile(r'<script src="[^"]*/polyfill@[^"]*"></script>\s*')
# Dash sends dash_table's bundle to every page because Dash itself imports it; the screen uses no DataTable
# (tests/test_callbacks.py checks the layouts), and the first screen need not parse it.
DASH_TABLE = re.compile(r'<script src="[^"]*/dash_table/[^"]*"></script>\s*')


class OneScreenDash(Dash):
    """Dash, with preload hints in the page's <head> for what the first screen needs after its scripts,
    without the polyfill and dash_table's bundle (see BABEL_POLYFILL, DASH_TABLE), and with the screen's own
    stylesheets and scripts as one file each (callbacks/asset_bundle.py).

    Dash's renderer asks for the layout (which carries the first map, see callbacks/map.py) and the callbacks
    only once every script has been evaluated, and dash-leaflet asks for its GeoJSON code only once the map has
    rendered. Hinted here, they are fetched while the scripts still load and wait in the memory cache.
    (The geometry itself is not hinted: naming it needs the viewer's scope, so a database read in every page
    request, and measured, that early server work slowed the scripts more than the hint saved.)
    """

    bundles: dict = {}

    def interpolate_index(self, **kwargs) -> str:
        from callbacks.asset_bundle import bundle_tags, insert_script

        prefix = self.config.requests_pathname_prefix
        stylesheet, script = bundle_tags(self.bundles, prefix)
        kwargs["scripts"] = insert_script(DASH_TABLE.sub("", BABEL_POLYFILL.sub("", kwargs["scripts"])), script)
        hints = [f'<link rel="preload" href="{prefix}{endpoint}" as="fetch" crossorigin="anonymous">'
                 for endpoint in ("_dash-layout", "_dash-dependencies")]
        if GEOJSON_CHUNK.exists():
            hints.append(f'<link rel="preload" href="{prefix}_dash-component-suites/dash_leaflet/'
                         f'{GEOJSON_CHUNK.name}" as="script">')
        kwargs["css"] = "\n".join([*hints, stylesheet, kwargs.get("css", "")])
        # The tab's title and the page's language are the viewer's (their 中/EN choice): the language also picks
        # the CJK glyph forms and the clock's words (assets/map.js).
        from callbacks.context import CONFIG_KEY, current_language

        context = self.server.config.get(CONFIG_KEY)
        language = current_language(context.settings) if context else "zh"
        if context:
            settings = context.settings
            kwargs["title"] = f"{settings.city_name_zh if language == 'zh' else settings.city_name_en} · OneScreen"
        page = super().interpolate_index(**kwargs)
        return page.replace("<html>", f'<html lang="{"zh-CN" if language == "zh" else "en"}">', 1)


class StaticCompressionCache:
    """flask-compress's cache, holding only the static files (keys from `static_cache_key`, never empty)."""

    def __init__(self) -> None:
        self._store: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        return None if key.endswith(";") else self._store.get(key)

    def set(self, key: str, value: bytes) -> None:
        if not key.endswith(";"):
            self._store[key] = value


def compress_responses(app: Dash) -> None:
    """Compress what the screen sends (7 MB of scripts become ~2 MB on a city intranet's wire).

    Dash's own `compress=True` compresses every response anew, on every request; the scripts never change
    while the server runs (their URLs carry their version), so each is compressed once and kept. Callback
    and layout responses, different every time, are compressed as they go (zstd: fast).
    """
    from flask_compress import Compress

    static = f"{app.config.requests_pathname_prefix}_dash-component-suites/"

    def static_cache_key(req) -> str:
        return req.full_path if req.method == "GET" and req.path.startswith(static) else ""

    # Streamed responses (the few kB of assets/) stay as they are.
    app.server.config.update(COMPRESS_CACHE_BACKEND=StaticCompressionCache, COMPRESS_CACHE_KEY=static_cache_key,
                             COMPRESS_STREAMS=False)
    app.server.extensions["compress"] = Compress(app.server)


def release_memory_while_serving(server) -> None:
    """Once a minute at most, after a response has been sent, the allocator's free memory goes back to the system:
    a wall's server stays the size of what it holds (cityops/memory.py)."""
    from cityops.memory import ReleaseEvery

    releaser = ReleaseEvery(60.0)

    @server.after_request
    def release_after_sending(response):
        response.call_on_close(releaser.maybe)
        return response


def create_app(settings: Settings | None = None) -> Dash:
    settings = settings or Settings.from_env()
    catalog = load_catalog(settings.catalog_path)
    from cityops.playlist import load_wall_config

    load_wall_config(settings.wall_path, catalog)  # a broken wall file stops the start, naming file, entry and fix
    # Dash's dev tools would ask the internet for newer versions; city intranets have none.
    os.environ.setdefault("DASH_DISABLE_VERSION_CHECK", "true")

    import connectors  # noqa: F401  (registers connector types before their config is read)
    from callbacks import register_callbacks
    from callbacks.asset_bundle import BUNDLED_FILES, build_bundles, register_bundle_route
    from callbacks.context import CONFIG_KEY, ScreenContext, current_language, remember_language_parameter
    from callbacks.geometry import register_geometry_routes
    from callbacks.map import first_map
    from cityops.sources import SourceConfig
    from connectors.config import load_connectors
    from layouts.page import build_page, validation_layout

    sources = tuple(SourceConfig(i.name, i.type, i.levels, i.interval_seconds, i.cron)
                    for i in load_connectors(settings.connectors_path, catalog.keys, settings.timezone) if i.enabled)
    app = OneScreenDash(
        __name__,
        title=f"{settings.city_name_zh if settings.language == 'zh' else settings.city_name_en} · OneScreen",
        update_title=None,  # no "Updating…" flicker in the tab title on every refresh
        assets_folder=str(PROJECT_ROOT / "assets"),
        assets_ignore=BUNDLED_FILES,  # served joined, one file of each kind (callbacks/asset_bundle.py)
        serve_locally=True,
        compress=False,  # see compress_responses: compressed once per static file, not on every request
    )
    app.server.config[CONFIG_KEY] = ScreenContext(settings, catalog, sources)
    compress_responses(app)
    register_geometry_routes(app.server)
    app.bundles = build_bundles(PROJECT_ROOT / "assets")
    register_bundle_route(app.server, app.bundles)
    remember_language_parameter(app.server)  # ?lang=en: the viewer's language from then on (a cookie)
    # Validation first: assigning a layout function without one would call it here, outside any request.
    app.validation_layout = validation_layout(build_page(settings, catalog), catalog, settings.language)
    # Built for each page load: the first map (geometry URL, colours, bounds) is read for the viewer and sent
    # with the layout, so the polygons are fetched as soon as the page renders (see callbacks/map.py).
    app.layout = lambda: build_page(settings, catalog, first_map(), current_language(settings))
    register_callbacks()
    # N screens polling the same view cost one query per refresh cycle (cityops/response_cache.py).
    from callbacks.cached_callbacks import install_response_cache

    install_response_cache(app, settings)
    release_memory_while_serving(app.server)

    return app


def __getattr__(name: str):
    """`app:server` for WSGI servers, built on first access rather than at import."""
    if name == "server":
        return create_app().server
    raise AttributeError(name)

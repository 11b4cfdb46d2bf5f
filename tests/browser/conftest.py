"""Browser tests: a real app on a real database, driven by Debian's chromium through pytest-playwright."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from cityops.boundaries import replace_units
from cityops.catalog import load_catalog
from cityops.db import migrate, session_scope
from cityops.demo_city import generate_city
from cityops.settings import Settings
from connectors.config import load_connectors
from connectors.runner import run_connector

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"

# A smaller city than the demo (4 districts, 200 communities) keeps each browser test to seconds; the
# benchmarks in bench/ exercise the full ~6,000-community city.
CITY_SHAPE = {"districts": 4, "streets": 20, "communities": 200}


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_FLAGS}


@pytest.fixture(scope="session")
def screen_settings(tmp_path_factory) -> Settings:
    folder = tmp_path_factory.mktemp("screen")
    settings = Settings(database_url=f"sqlite:///{folder / 'screen.db'}", run_scheduler=False, refresh_seconds=5)
    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        replace_units(session, generate_city(7, **CITY_SHAPE))
    catalog = load_catalog(settings.catalog_path)
    import connectors  # noqa: F401

    simulator = next(i for i in load_connectors(settings.connectors_path) if i.type == "simulator")
    summary = run_connector(settings.database_url, simulator, catalog, timezone=settings.timezone,
                            since=str(int(time.time() - 2 * 86400)))
    assert summary.status == "ok", summary
    return settings


@pytest.fixture(scope="session")
def live_server(screen_settings) -> str:
    """The real app (create_app) on a free port, in a thread, for the whole browser session."""
    from app import create_app

    app = create_app(screen_settings)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@dataclass
class Screen:
    """A page on the live app that remembers every console error and failed request."""

    page: object
    base_url: str
    errors: list[str] = field(default_factory=list)

    def open(self, path: str = "/") -> "Screen":
        """Open the screen and wait until it has settled as a person would see it: polygons, then the panels and
        the indicator selector drawn after them. Clicking earlier, while those still arrive and the layout
        shifts by a few pixels, may land beside the polygon aimed at."""
        self.page.goto(self.base_url + path)
        self.page.wait_for_function(
            "document.querySelectorAll('path.leaflet-interactive').length > 0"
            " && document.querySelectorAll('.kpi-card').length > 0"
            " && document.querySelectorAll('.breadcrumb [data-code]').length > 0"
            " && document.getElementById('header-indicator') !== null", timeout=30_000)
        return self

    def polygons(self):
        return self.page.locator("path.leaflet-interactive")

    def breadcrumb(self) -> list[str]:
        return [text.strip() for text in self.page.locator(".breadcrumb [data-code]").all_inner_texts()]

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path

    def assert_no_console_errors(self) -> None:
        assert self.errors == [], "browser console errors:\n" + "\n".join(self.errors)


@pytest.fixture
def screen(page, live_server) -> Screen:
    screen = Screen(page, live_server)
    page.on("console", lambda message: message.type == "error" and screen.errors.append(message.text))
    page.on("pageerror", lambda error: screen.errors.append(f"page error: {error}"))
    # A request the browser itself cancelled because the test navigated away (a wall's playlist asks every few
    # seconds, so one may be in flight at any moment) is no failure of the app; every other one is.
    page.on("requestfailed", lambda request: request.failure == "net::ERR_ABORTED"
            or screen.errors.append(f"request failed: {request.url} ({request.failure})"))
    page.set_viewport_size({"width": 1920, "height": 1080})
    return screen

"""The headless browser the benchmarks drive: Debian's chromium, fresh contexts, network and paint probes."""

from __future__ import annotations

import json
import time

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)


def new_context(browser):
    """A fresh context: empty HTTP cache, no cookies, the screen's design size."""
    return browser.new_context(viewport={"width": 1920, "height": 1080})


class NetworkTracker:
    """Counts a page's requests in flight and remembers the finished ones (for bytes transferred)."""

    def __init__(self, page):
        self.in_flight = 0
        self.finished = []
        self.last_change = time.monotonic()
        page.on("request", self._started)
        page.on("requestfinished", self._finished)
        page.on("requestfailed", self._failed)

    def _started(self, _request):
        self.in_flight += 1
        self.last_change = time.monotonic()

    def _finished(self, request):
        self.in_flight = max(0, self.in_flight - 1)
        self.finished.append(request)
        self.last_change = time.monotonic()

    def _failed(self, _request):
        self.in_flight = max(0, self.in_flight - 1)
        self.last_change = time.monotonic()

    def wait_quiet(self, page, quiet_ms: int = 500, timeout: float = 60) -> None:
        """Until no request has been in flight for `quiet_ms` (playwright's networkidle, usable after load)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page.wait_for_timeout(50)  # lets playwright deliver events
            if self.in_flight == 0 and time.monotonic() - self.last_change >= quiet_ms / 1000:
                return
        raise TimeoutError(f"network still busy after {timeout:.0f} s ({self.in_flight} requests in flight)")

    def bytes_received(self) -> int:
        """Sum of encoded response bodies and headers of every finished request."""
        total = 0
        for request in self.finished:
            try:
                sizes = request.sizes()
            except Exception:  # noqa: BLE001 - a request of a closed page has no sizes any more
                continue
            total += max(0, sizes.get("responseBodySize", 0)) + max(0, sizes.get("responseHeadersSize", 0))
        return total


def paint_probe(selector: str, count: int) -> str:
    """An init script: when `count` elements match `selector`, wait one animation frame and record
    performance.now() (milliseconds since navigation start) in window.__benchPainted."""
    return """
(() => {
  const selector = %s, wanted = %d;
  let armed = true;
  const check = () => {
    if (!armed || document.querySelectorAll(selector).length < wanted) return;
    armed = false;
    requestAnimationFrame(() => { window.__benchPainted = performance.now(); });
  };
  new MutationObserver(check).observe(document, {childList: true, subtree: true, attributes: true});
  check();
})();
""" % (json.dumps(selector), count)

"""connectors/http.py reads the environment once per host, and still the way requests would: proxies (with
NO_PROXY) from the environment are honoured, against a real local proxy."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.base import RetriableError
from connectors.http import HttpClient, decode_json


@pytest.fixture
def proxy():
    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self):  # a forward proxy receives the absolute URL
            seen.append(self.path)
            body = json.dumps({"via": "proxy", "url": self.path}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()


def test_proxies_from_the_environment_are_used_for_every_request(proxy, monkeypatch):
    address, seen = proxy
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", address)
    client = HttpClient("intranet-api", timeout=5, attempts=1)
    for page in (1, 2):
        response = client.get("http://api.city.invalid/v1/readings", {"page": page})
        assert decode_json(response.content, "test")["via"] == "proxy"
    assert seen == ["http://api.city.invalid/v1/readings?page=1", "http://api.city.invalid/v1/readings?page=2"]


def test_no_proxy_hosts_are_asked_directly(proxy, monkeypatch):
    address, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", address)
    monkeypatch.setenv("NO_PROXY", "api.city.invalid")
    client = HttpClient("intranet-api", timeout=2, attempts=1)
    with pytest.raises(RetriableError):  # directly: the name does not resolve
        client.get("http://api.city.invalid/v1/readings")
    assert seen == []

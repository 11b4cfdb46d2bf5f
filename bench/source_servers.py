"""The servers bench/connector_sources.py's sources run on: the page server playing the HTTP APIs (a subprocess
of connector_types.py, `--serve-pages`) and a private mosquitto broker with its session helpers."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import common

SCRIPT = Path(__file__).resolve().parent / "connector_types.py"  # serves the pages: `--serve-pages`
PAGE_ROWS = 1_000
FROST_PATH = "/FROST-Server/v1.1"
OPEN311_PATH = "/open311/v2"


def start_page_server(kind: str, pages: Path, port: int, folder: Path) -> subprocess.Popen:
    """The page server (`serve_pages`) in a subprocess, once it answers."""
    server = common.start_process([common.PYTHON, str(SCRIPT), "--serve-pages", str(pages),
                                   "--serve-kind", kind, "--port", str(port)], log_path=folder / "server.log")
    try:
        common.wait_for_http(f"http://127.0.0.1:{port}/", server, log_path=folder / "server.log")
    except BaseException:
        common.stop_process(server)
        raise
    return server


def start_broker(folder: Path) -> tuple[int, subprocess.Popen]:
    """A private mosquitto on a free port with the queue settings mqtt's docstring asks operators for, and its
    process."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    # Not under the run's folder: mosquitto started by root may read its files as the mosquitto user, who cannot
    # enter the benchmark's private temp folder.
    home = common.temp_dir("mosquitto")
    home.chmod(0o755)
    port = common.free_port()
    (home / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                                         f"max_queued_messages 0\nmax_queued_bytes 0\n", encoding="utf-8")
    process = common.start_process([binary, "-c", str(home / "mosquitto.conf")], log_path=folder / "mosquitto.log")
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return port, process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                common.stop_process(process)
                log = (folder / "mosquitto.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"private mosquitto did not start on port {port}: {log}") from None
            time.sleep(0.05)


def mqtt_client(client_id: str):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


def connect(client, port: int, clean_start: bool = True, expiry: int = 0) -> None:
    """Connect and start the network thread; wait for the broker's answer."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(PacketTypes.CONNECT)
    if expiry:
        properties.SessionExpiryInterval = expiry
    client.connect("127.0.0.1", port, clean_start=clean_start, properties=properties)
    client.loop_start()
    deadline = time.monotonic() + 10
    while not client.is_connected():
        if time.monotonic() > deadline:
            client.loop_stop()
            raise RuntimeError(f"mosquitto on port {port} did not accept {client._client_id!r} within 10 s")
        time.sleep(0.01)


def open_session(port: int, client_id: str, topic: str) -> None:
    """The connector's persistent session with its QoS 1 subscription, as its first run leaves it."""
    import threading

    client = mqtt_client(client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    connect(client, port, clean_start=False, expiry=3600)
    try:
        client.subscribe(topic, qos=1)
        if not subscribed.wait(10):
            raise RuntimeError(f"mosquitto on port {port} did not confirm the subscription to {topic}")
    finally:
        client.disconnect()
        client.loop_stop()


def close_session(port: int, client_id: str) -> None:
    """Remove the connector's session (and anything left queued in it): a clean start with no expiry."""
    client = mqtt_client(client_id)
    connect(client, port)
    client.disconnect()
    client.loop_stop()


def serve_pages(folder: Path, port: int, kind: str = "readings") -> None:
    """Serve the pages rendered in `folder` as the API of `kind` (`page_file`), an empty page past the last."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    class Pages(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the connectors' sessions expect of an API
        # Headers and body are two writes: with Nagle's algorithm the body waits for the client's delayed ACK of
        # the headers (40 ms a request here). Production servers set TCP_NODELAY on keep-alive connections too.
        disable_nagle_algorithm = True

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/":
                body = b"ok"
            else:
                found = page_file(kind, url.path, {name: values[0] for name, values in parse_qs(url.query).items()})
                if found is None:
                    self.send_error(404)
                    return
                path = folder / found
                body = path.read_bytes() if found and path.is_file() else EMPTY_PAGES[kind]
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Pages).serve_forever()


EMPTY_PAGES = {"readings": b'{"code": 0, "data": {"total": 0, "items": []}}', "sensorthings": b'{"value": []}',
               "open311": b"[]"}


OBSERVATIONS_PATH = re.compile(re.escape(FROST_PATH) + r"/Datastreams\((\d+)\)/Observations")


def page_file(kind: str, path: str, query: dict[str, str]) -> str | None:
    """The rendered file answering a request ("" for an empty page), None for an unknown path."""
    def number(text: str | None, default: int) -> int | None:
        return int(text) if text is not None and text.isdigit() else (default if text is None else None)

    if kind == "readings" and path == "/api/v1/readings":
        page = number(query.get("page"), 1)
        return f"page-{page}.json" if page is not None else ""
    if kind == "sensorthings":
        if path == f"{FROST_PATH}/Datastreams":
            return "datastreams.json"
        observations = OBSERVATIONS_PATH.fullmatch(path)
        skip = number(query.get("$skip"), 0)
        if observations:
            return f"observations-{observations.group(1)}-{skip // PAGE_ROWS + 1}.json" if skip is not None else ""
    if kind == "open311":
        if path == f"{OPEN311_PATH}/services.json":
            return "services.json"
        if path == f"{OPEN311_PATH}/requests.json":
            page = number(query.get("page"), 1)
            return f"requests-{page}.json" if page is not None else ""
    return None

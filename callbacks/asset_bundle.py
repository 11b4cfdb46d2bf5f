"""The screen's own stylesheets and scripts, each kind served as one file.

assets/ keeps one stylesheet and one script per feature (style, navigation, wall, exports, …). Left to Dash, each is
a request of its own: 13 requests ahead of Dash's renderer, and a browser talks to a server over at most six
connections (HTTP/1.1), so Dash's big scripts waited behind the small ones. Joined, in the order Dash would have
included them, they are two requests (bench/first_screen.py). The joined files are built once at start, named by
their content (a changed file is a new URL, so browsers may keep them for a year) and compressed once.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, request

# Dash must not include what the bundles carry (Dash's `assets_ignore`); assets/ still serves every file itself.
BUNDLED_FILES = r"\.(css|js)$"
ROUTE = "/bundle/<name>"
MEDIA_TYPES = {"css": "text/css", "js": "text/javascript"}  # Flask adds the charset (utf-8)


@dataclass(frozen=True)
class Bundle:
    kind: str        # "css" or "js"
    name: str        # screen.<content hash>.<kind>
    body: bytes
    gzipped: bytes
    sources: tuple[str, ...]   # the files joined, relative to assets/

    @property
    def etag(self) -> str:
        return self.name.split(".")[1]


def asset_files(folder: Path, kind: str) -> list[Path]:
    """The files of `kind` in Dash's own order (sorted folders, then sorted names), so the cascade of the
    stylesheets and the order the scripts run in are what they were as separate files."""
    found = []
    for current, _, files in sorted(os.walk(folder)):
        found += [Path(current) / name for name in sorted(files) if name.endswith(f".{kind}")]
    return found


def build_bundle(folder: Path, kind: str) -> Bundle | None:
    files = asset_files(folder, kind)
    if not files:
        return None
    sources = tuple(path.relative_to(folder).as_posix() for path in files)
    # Each file keeps its name above it (the browser's tools show where a rule or a line came from); the newline and
    # the semicolon keep one file's last statement from running into the next file's first.
    parts = [f"/* {source} */\n".encode() + path.read_bytes().rstrip() + (b"\n;\n" if kind == "js" else b"\n")
             for source, path in zip(sources, files)]
    body = b"".join(parts)
    digest = hashlib.sha256(body).hexdigest()[:16]
    return Bundle(kind, f"screen.{digest}.{kind}", body, gzip.compress(body, 9, mtime=0), sources)


def build_bundles(folder: Path) -> dict[str, Bundle]:
    return {kind: bundle for kind in MEDIA_TYPES if (bundle := build_bundle(folder, kind)) is not None}


def bundle_tags(bundles: dict[str, Bundle], prefix: str) -> tuple[str, str]:
    """(the stylesheet's <link>, the script's <script>) for the page; empty where there is no such bundle."""
    css = bundles.get("css")
    js = bundles.get("js")
    return (f'<link rel="stylesheet" href="{prefix}bundle/{css.name}">' if css else "",
            f'<script src="{prefix}bundle/{js.name}"></script>' if js else "")


DASH_RENDERER_SCRIPT = re.compile(r'<script src="[^"]*/dash-renderer/[^"]*"></script>')


def insert_script(scripts: str, tag: str) -> str:
    """The scripts of the page with `tag` where Dash puts the assets' scripts: after the component libraries,
    just before Dash's renderer (which starts the app once it has run)."""
    if not tag:
        return scripts
    found = DASH_RENDERER_SCRIPT.search(scripts)
    if found is None:
        return scripts + tag
    return scripts[:found.start()] + tag + "\n" + scripts[found.start():]


def register_bundle_route(server: Flask, bundles: dict[str, Bundle]) -> None:
    by_name = {bundle.name: bundle for bundle in bundles.values()}

    @server.route(ROUTE)
    def screen_bundle(name: str):
        bundle = by_name.get(name)
        if bundle is None:
            # An old page asking for a bundle of a previous start: it reloads with the current one.
            return Response("no such bundle (the server has restarted with new assets: reload the page)",
                            status=404, mimetype="text/plain")
        headers = {"Cache-Control": "public, max-age=31536000, immutable", "ETag": f'"{bundle.etag}"',
                   "Vary": "Accept-Encoding"}
        if request.if_none_match and bundle.etag in request.if_none_match:
            return Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return Response(bundle.gzipped, mimetype=MEDIA_TYPES[bundle.kind],
                            headers={**headers, "Content-Encoding": "gzip"})
        return Response(bundle.body, mimetype=MEDIA_TYPES[bundle.kind], headers=headers)

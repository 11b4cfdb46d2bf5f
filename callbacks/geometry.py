"""GET /geo/<code>/children.pbf, children.geojson and labels.geojson: what the map draws, fetched by URL so the
browser can cache it.

`children.pbf` is what the map fetches: the children's boundaries as geobuf, coordinates rounded for the view
(cityops/geography.py). `children.geojson` serves the same boundaries as GeoJSON text, for people and GIS tools.

Like a callback, this route decides the viewer's scope itself; a unit outside it answers 404, so the route
does not even confirm that the unit exists. Answers are kept in the shared response cache by path, scope and data
version (callbacks/cached_callbacks.py), so a hundred screens drilling into the same district read it once.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache

from flask import Flask, Response, request

from callbacks.cached_callbacks import current_cache, viewer_key
from callbacks.context import viewer_request
from cityops.geography import children_geobuf, children_geojson, children_labels_geojson
from cityops.response_cache import Stored

# What each route serves: (the children's boundaries or the points where their names are written, media type).
LAYERS = {
    ("children", "pbf"): (children_geobuf, "application/x-protobuf"),
    ("children", "geojson"): (children_geojson, "application/geo+json"),
    ("labels", "geojson"): (children_labels_geojson, "application/geo+json"),
}
# A boundary changes only with an import, which changes the data version (and so the key): kept for an hour.
GEOMETRY_SECONDS = 3600


@lru_cache(maxsize=512)
def _compressed(etag: str, body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6)


def _not_found(what: str) -> Stored:
    return Stored(404, (("Content-Type", "text/plain; charset=utf-8"),), what.encode("utf-8"))


def _read(code: str, layer: str, kind: str) -> tuple[Stored, bool]:
    """The layer's body, its tag and type, read for the viewer (scope-checked)."""
    read, mimetype = LAYERS[layer, kind]
    with viewer_request() as viewer:
        unit_id = viewer.tree.id_by_code.get(code)
        if unit_id is None or not viewer.scope.contains(viewer.tree, unit_id):
            return _not_found("unknown unit"), True
        body = read(viewer.session, viewer.scope, unit_id)
    body = body.encode("utf-8") if isinstance(body, str) else body
    # The tag is the content's own hash: any import that changes a boundary or a name changes it.
    etag = hashlib.sha1(body).hexdigest()[:20]
    return Stored(200, (("Content-Type", mimetype), ("ETag", f'"{etag}"')), body), True


def register_geometry_routes(server: Flask) -> None:
    @server.route("/geo/<code>/<layer>.<kind>")
    def unit_children_geometry(code: str, layer: str, kind: str):
        if (layer, kind) not in LAYERS:
            return Response("unknown layer", status=404, mimetype="text/plain")
        cache = current_cache()
        if cache is None:
            stored, _ = _read(code, layer, kind)
        else:
            # No clock in the key: boundaries do not age, only an import changes them (and the data version).
            key = cache.key("geometry", code, layer, kind, viewer_key(), clock=False)
            stored = cache.get_or_compute(key, lambda: _read(code, layer, kind), ttl=GEOMETRY_SECONDS)
        if stored.status != 200:
            return Response(stored.body, status=stored.status, headers=list(stored.headers))
        headers = dict(stored.headers)
        etag = headers["ETag"].strip('"')
        if request.if_none_match and etag in request.if_none_match:
            return Response(status=304, headers={"ETag": f'"{etag}"'})
        headers.update({"Cache-Control": "private, max-age=3600", "Vary": "Accept-Encoding"})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(_compressed(etag, stored.body), headers=headers)
        return Response(stored.body, headers=headers)

"""GET /geo/<code>/children.geojson and /labels.geojson: what the map draws, fetched by URL so the browser
can cache it.

Like a callback, this route decides the viewer's scope itself; a unit outside it answers 404, so the route
does not even confirm that the unit exists.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache

from flask import Flask, Response, request

from callbacks.context import viewer_request
from cityops.geography import children_geojson, children_labels_geojson

# What each route serves: the children's boundaries, or the points where their names are written.
LAYERS = {"children": children_geojson, "labels": children_labels_geojson}


@lru_cache(maxsize=512)
def _compressed(etag: str, body: str) -> bytes:
    return gzip.compress(body.encode("utf-8"), compresslevel=6)


def register_geometry_routes(server: Flask) -> None:
    @server.route("/geo/<code>/<layer>.geojson")
    def unit_children_geojson(code: str, layer: str):
        if layer not in LAYERS:
            return Response("unknown layer", status=404, mimetype="text/plain")
        with viewer_request() as viewer:
            unit_id = viewer.tree.id_by_code.get(code)
            if unit_id is None or not viewer.scope.contains(viewer.tree, unit_id):
                return Response("unknown unit", status=404, mimetype="text/plain")
            body = LAYERS[layer](viewer.session, viewer.scope, unit_id)
        # The tag is the content's own hash: any import that changes a boundary or a name changes it.
        etag = hashlib.sha1(body.encode("utf-8")).hexdigest()[:20]
        if request.if_none_match and etag in request.if_none_match:
            return Response(status=304, headers={"ETag": f'"{etag}"'})
        headers = {"ETag": f'"{etag}"', "Cache-Control": "private, max-age=3600", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(_compressed(etag, body), headers=headers, mimetype="application/geo+json")
        return Response(body, headers=headers, mimetype="application/geo+json")

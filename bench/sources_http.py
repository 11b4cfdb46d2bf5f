"""The JSON API's source for bench/connector_types.py: pages rendered beforehand, served by a subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from source_servers import PAGE_ROWS, start_page_server  # noqa: E402
from sources_records import CHUNK_ROWS, Plan, Source, time_texts  # noqa: E402


def build_http_json(plan: Plan, folder: Path) -> Source:
    """A JSON API paged by page number, served from pages rendered beforehand by a subprocess."""
    pages = folder / "pages"
    pages.mkdir()
    number = 0
    for frame in plan.frames(rows=CHUNK_ROWS - CHUNK_ROWS % PAGE_ROWS):
        rows = pd.DataFrame({
            "unit_code": frame["unit_code"], "metric": frame["indicator"],
            "reported_at": time_texts(frame["observed_at"], plan.city.timezone, lambda t: t.isoformat()),
            "value": frame["value"]})
        for start in range(0, len(rows), PAGE_ROWS):
            number += 1
            items = rows.iloc[start:start + PAGE_ROWS].to_json(orient="records", force_ascii=False)
            (pages / f"page-{number}.json").write_bytes(
                b'{"code": 0, "data": {"total": %d, "items": ' % plan.records + items.encode() + b"}}")
    port = common.free_port()
    server = start_page_server("readings", pages, port, folder)
    entry = {"name": "bench-http-json", "type": "http_json", "levels": ["community", "street"],
             "schedule": {"interval": "10m"}, "timeout": "30m",
             "config": {"url": f"http://127.0.0.1:{port}/api/v1/readings", "records_path": "data.items",
                        "pagination": "page", "page_size": PAGE_ROWS, "max_pages": number + 10, "timeout": 30},
             "mapping": {"unit_code": "unit_code", "observed_at": "reported_at", "indicator": "metric",
                         "value": "value"}}
    return Source(entry, plan.records, server=server,
                  note="http_json pages (1,000 rows each) come from a separate http.server process, rendered "
                       "beforehand")

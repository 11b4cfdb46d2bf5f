"""The sources of bench/connector_types.py: for each connector type, a builder making a source of N records for
the demo city (files, databases, rendered API pages, a private MQTT broker) and the connectors.yaml entry that
reads it, one module per kind of source:

- sources_records.py: the demo city as a source sees it, the planned records, `Source` and `RawBaseline`;
- sources_files.py (drop_folder), sources_sql.py (sql_query), sources_http.py (http_json),
  sources_simulator.py, sources_sensorthings.py, sources_open311.py (and its own baseline), sources_mqtt.py.

The servers they run on (the page server, the broker) are in bench/source_servers.py. Adding a type is one
builder in a module of its kind and one line in BUILDERS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sources_files import build_drop_folder  # noqa: E402
from sources_http import build_http_json  # noqa: E402
from sources_mqtt import build_mqtt  # noqa: E402
from sources_open311 import build_open311, open311_baseline  # noqa: E402
from sources_records import City, Plan, RawBaseline, Source  # noqa: E402
from sources_sensorthings import build_sensorthings  # noqa: E402
from sources_simulator import build_simulator  # noqa: E402
from sources_sql import build_sql_query  # noqa: E402

__all__ = ["BASELINES", "BUILDERS", "City", "Plan", "RawBaseline", "Source"]

BUILDERS: dict[str, Callable[[Plan, Path], Source]] = {
    "drop_folder": build_drop_folder,
    "sql_query": build_sql_query,
    "http_json": build_http_json,
    "simulator": build_simulator,
    "sensorthings": build_sensorthings,
    "open311": build_open311,
    "mqtt": build_mqtt,
}

# Types whose records are not the observation rows of the others, compared with raw inserts of their own.
BASELINES: dict[str, Callable[[Plan], RawBaseline]] = {"open311": open311_baseline}

"""The SensorThings source for bench/connector_types.py: a FROST-like server's Datastreams and Observations pages,
rendered beforehand and served by a subprocess.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from source_servers import FROST_PATH, PAGE_ROWS, start_page_server  # noqa: E402
from sources_records import SEED, STREET_HOURLY, Plan, Source, _utc_offset, realistic_values  # noqa: E402

# Street-level indicators a SensorThings air/noise network reports, by the ObservedProperty names it uses.
SENSOR_PROPERTIES = {"aqi": "Air Quality Index", "pm25": "PM2.5", "noise": "Noise level"}
SENSOR_UNITS = {"aqi": ("AQI", "AQI"), "pm25": ("microgram per cubic metre", "µg/m³"), "noise": ("decibel", "dB(A)")}


def build_sensorthings(plan: Plan, folder: Path) -> Source:
    """A SensorThings server: a Datastream per street and air/noise indicator, the planned number of hourly
    Observations spread over them (each datastream's in time order), pages rendered beforehand."""
    pages = folder / "pages"
    pages.mkdir()
    port = common.free_port()
    root = f"http://127.0.0.1:{port}{FROST_PATH}"
    city = plan.city
    streets = sorted(city.pair_codes[city.pair_keys == STREET_HOURLY[0]])
    streams = [(code, key) for code in streets for key in SENSOR_PROPERTIES]
    if len(streams) > PAGE_ROWS:
        raise RuntimeError(f"{len(streams)} datastreams do not fit one Datastreams page of {PAGE_ROWS}")
    entities = [datastream_entity(root, ident, code, key, streets.index(code) + 1)
                for ident, (code, key) in enumerate(streams, start=1)]
    (pages / "datastreams.json").write_text(json.dumps({"value": entities}, ensure_ascii=False), encoding="utf-8")

    per_stream, extra = divmod(plan.records, len(streams))
    last_hour = plan.now // 3600 * 3600 - 3600
    longest = per_stream + (extra > 0)
    # phenomenonTime as FROST writes it (UTC), each hour formatted once.
    hours = last_hour - np.arange(longest - 1, -1, -1) * 3600
    texts = [datetime.fromtimestamp(int(t), ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%S.000Z") for t in hours]
    offset = _utc_offset(city.timezone, plan.now)
    observation_id = 0
    for ident, (code, key) in enumerate(streams, start=1):
        count = per_stream + (ident <= extra)
        if count == 0:
            continue
        times = hours[longest - count:]
        values = realistic_values(np.full(count, key, dtype=object), (times + offset) % 86400 / 3600,
                                  np.random.default_rng([SEED, ident])).tolist()
        for number, start in enumerate(range(0, count, PAGE_ROWS), start=1):
            value = [{"@iot.id": observation_id + position + 1, "phenomenonTime": texts[longest - count + position],
                      "resultTime": texts[longest - count + position], "result": values[position]}
                     for position in range(start, min(start + PAGE_ROWS, count))]
            page: dict = {"value": value}
            if start + PAGE_ROWS < count:
                page["@iot.nextLink"] = (f"{root}/Datastreams({ident})/Observations?$orderby=phenomenonTime%20asc"
                                         f"&$top={PAGE_ROWS}&$skip={start + PAGE_ROWS}")
            (pages / f"observations-{ident}-{number}.json").write_text(json.dumps(page), encoding="utf-8")
        observation_id += count
    server = start_page_server("sensorthings", pages, port, folder)
    entry = {"name": "bench-sensorthings", "type": "sensorthings", "levels": ["street"],
             "schedule": {"interval": "10m"}, "timeout": "30m",
             "config": {"url": root, "unit_code_from": "thing_property:street_code",
                        "indicator_from": "observed_property_name",
                        "indicator_names": {name: key for key, name in SENSOR_PROPERTIES.items()},
                        "page_size": PAGE_ROWS, "history": "", "timeout": 30}}
    return Source(entry, plan.records, server=server,
                  detail=f", {len(streams)} Datastreams: {len(streets)} streets × {'/'.join(SENSOR_PROPERTIES)}, "
                         f"hourly",
                  note=f"sensorthings: {len(streams)} Datastreams ({len(streets)} streets × "
                       f"{', '.join(SENSOR_PROPERTIES)}; Thing and ObservedProperty expanded, resolved by "
                       f"thing_property:street_code and observed_property_name) with N hourly Observations spread "
                       f"evenly over them ({per_stream:,}-{longest:,} each at {plan.records:,}, so they reach "
                       f"{longest / 24:,.0f} days back), pages of {PAGE_ROWS:,} (@iot.nextLink with $skip) from a "
                       f"separate http.server process, rendered beforehand; its records are not the raw baseline's "
                       f"(street air/noise readings only), the count is the same")


def datastream_entity(root: str, ident: int, code: str, key: str, thing: int) -> dict:
    """A Datastream as FROST lists it with $expand=Thing,ObservedProperty."""
    name, symbol = SENSOR_UNITS[key]
    observed = list(SENSOR_PROPERTIES).index(key) + 1
    return {"@iot.id": ident, "@iot.selfLink": f"{root}/Datastreams({ident})",
            "name": f"{SENSOR_PROPERTIES[key]} {code}", "description": f"{SENSOR_PROPERTIES[key]} at street {code}",
            "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
            "unitOfMeasurement": {"name": name, "symbol": symbol, "definition": ""},
            "Thing": {"@iot.id": thing, "@iot.selfLink": f"{root}/Things({thing})", "name": f"街道监测站 {code}",
                      "description": "street air and noise monitor", "properties": {"street_code": code}},
            "ObservedProperty": {"@iot.id": observed, "@iot.selfLink": f"{root}/ObservedProperties({observed})",
                                 "name": SENSOR_PROPERTIES[key], "definition": f"urn:onescreen:bench:{key}",
                                 "description": SENSOR_PROPERTIES[key]}}

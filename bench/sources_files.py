"""The drop folder's source for bench/connector_types.py: one CSV as a street office's Excel exports it."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sources_records import COMMUNITY_HOURLY, STREET_HOURLY, Plan, Source, time_texts  # noqa: E402


def build_drop_folder(plan: Plan, folder: Path) -> Source:
    """One CSV as a street office's Excel exports it: Chinese headers and indicator names, loose times."""
    drop = folder / "drop"
    drop.mkdir()
    path = drop / "街道办-小时报表.csv"
    names = plan.city.names_zh
    with path.open("w", encoding="utf-8", newline="") as out:
        for number, frame in enumerate(plan.frames()):
            table = pd.DataFrame({
                "单位代码": frame["unit_code"], "指标": frame["indicator"].map(names),
                "时间": time_texts(frame["observed_at"], plan.city.timezone,
                                 lambda t: f"{t.year}/{t.month}/{t.day} {t.hour}:{t.minute:02d}"),
                "数值": frame["value"]})
            table.to_csv(out, header=number == 0, index=False, float_format="%.10g")
    entry = {"name": "bench-drop-folder", "type": "drop_folder", "levels": ["community", "street"],
             "schedule": {"interval": "5m"}, "timeout": "30m",
             "config": {"folder": str(drop), "settle_seconds": 0},
             "mapping": {"unit_code": "单位代码", "observed_at": "时间", "indicator": "指标", "value": "数值",
                         "indicator_names": {names[key]: key for key in (*COMMUNITY_HOURLY, *STREET_HOURLY)}}}
    return Source(entry, plan.records)

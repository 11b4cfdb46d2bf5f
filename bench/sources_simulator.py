"""The simulator's source for bench/connector_types.py: the configured instance, over a window of N records."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from sources_records import Plan, Source  # noqa: E402


def build_simulator(plan: Plan, folder: Path) -> Source:
    """The configured simulator, from the `since` whose window holds (at least) the planned records."""
    import yaml

    settings = common.settings_for(plan.city.template)
    document = yaml.safe_load(settings.connectors_path.read_text(encoding="utf-8"))
    entry = next(item for item in document["connectors"] if item["type"] == "simulator")
    since, records = simulator_window(plan)
    return Source(dict(entry, name="bench-simulator"), records, since=str(since))


def simulator_window(plan: Plan) -> tuple[int, int]:
    """(since, records): the latest start whose window up to `now` holds at least `plan.records` records.
    The simulator's records are a function of time alone, so a window generated once tells."""
    from cityops.catalog import load_catalog
    from cityops.db import session_scope
    from cityops.tree import load_tree
    from connectors.base import ConnectorContext
    from connectors.runner import build_connector

    settings = common.settings_for(plan.city.template)
    with session_scope(settings.database_url) as session:
        tree = load_tree(session)
    common.release(settings.database_url)
    context = ConnectorContext(catalog=load_catalog(settings.catalog_path), tree=tree, now=plan.now,
                               timezone=settings.timezone)
    connector = build_connector(common.simulator_instance(settings), context)
    window = max(3600, int(plan.records / 800_000 * 86400))  # the demo city reports ~0.9-1 M records a day
    while True:
        times = np.concatenate([batch.frame["observed_at"].to_numpy()
                                for batch in connector.fetch(str(plan.now - window))])
        if len(times) >= plan.records:
            since = int(np.sort(times)[::-1][plan.records - 1])
            return since, int((times >= since).sum())
        window *= 2

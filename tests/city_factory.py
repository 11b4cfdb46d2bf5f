"""A tiny, hand-checkable city for storage and roll-up tests: 2 districts × 2 streets × 2 communities."""

from __future__ import annotations

from shapely.geometry import box

from cityops.hierarchy import Level, UnitRecord
from cityops.settings import Settings

CITY = "990000"


def tiny_city() -> list[UnitRecord]:
    """Districts split the city west/east, streets split districts south/north, communities west/east.

    Populations are 1000 × (index + 1) for communities, so weighted means are easy to check by hand.
    """
    units = [UnitRecord(CITY, "小城市", "Tiny City", Level.CITY, None, 36000, box(0, 0, 4, 2))]
    population = 1000
    for d in range(2):
        district = f"9901{d + 1:02d}"
        streets = []
        for s in range(2):
            street = f"{district}{s + 1:03d}"
            communities = []
            for c in range(2):
                code = f"{street}{c + 1:03d}"
                geometry = box(2 * d + c, s, 2 * d + c + 1, s + 1)
                communities.append(UnitRecord(code, f"社区{code[-5:]}", f"Community {code[-5:]}", Level.COMMUNITY,
                                              street, population, geometry))
                population += 1000
            streets.append(UnitRecord(street, f"街道{street[-4:]}", f"Street {street[-4:]}", Level.STREET, district,
                                      sum(u.population for u in communities), box(2 * d, s, 2 * d + 2, s + 1)))
            units.extend(communities)
        units.extend(streets)
        units.append(UnitRecord(district, f"区{d + 1}", f"District {d + 1}", Level.DISTRICT, CITY,
                                sum(u.population for u in streets), box(2 * d, 0, 2 * d + 2, 2)))
    return units


def simulated_tiny_city(folder, hours: float = 24) -> Settings:
    """Settings for a SQLite database in `folder` holding the tiny city and `hours` of simulator history, loaded
    through the real connector runner: what the screen's callback and export tests read."""
    import time
    from dataclasses import replace

    import connectors  # noqa: F401  (registers the connector types)
    from cityops.boundaries import replace_units
    from cityops.catalog import load_catalog
    from cityops.db import migrate, session_scope
    from connectors.config import load_connectors
    from connectors.runner import run_connector

    settings = replace(Settings(), database_url=f"sqlite:///{folder / 'db.sqlite'}", run_scheduler=False)
    migrate(settings.database_url)
    with session_scope(settings.database_url) as session:
        replace_units(session, tiny_city())
    simulator = next(i for i in load_connectors(settings.connectors_path) if i.type == "simulator")
    summary = run_connector(settings.database_url, simulator, load_catalog(settings.catalog_path),
                            timezone=settings.timezone, since=str(int(time.time() - hours * 3600)))
    assert summary.status == "ok", summary
    return settings

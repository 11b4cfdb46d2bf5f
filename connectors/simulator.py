"""A simulated city: realistic live data for every reported indicator, through the ordinary connector contract.

Values are a deterministic function of (seed, indicator, unit, time): daily cycles, weekday effects,
slow district-level stress, noise, and occasional spikes that cross thresholds. Re-fetching a window yields the
same values, so a replay or a crash-restart changes nothing. Each unit reports at its own offset within the
indicator's interval, as 6,000 real communities would, so the screen moves on every run.

A district's own counts (OWN_COUNTS) are its communities' figures for the same interval, summed, with a little
counting noise; every few days one district's feed breaks for some hours and under-reports, so the cross-level
consistency rule has something real to find. `planned_broken_feeds()` says when.

Example connectors.yaml entry (the one `make run` starts with):

    - name: city-simulator
      type: simulator
      levels: [district, street, community]
      schedule: {interval: 5m}
      config: {seed: 2026, backfill_days: 7}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from cityops.buckets import bucket_start
from cityops.catalog import Indicator
from cityops.hierarchy import Level
from connectors.base import ConfigField, Connector, Health, RecordBatch, register

# Simulate data in windows of this length: large enough to vectorise, small enough to stream.
WINDOW_SECONDS = 6 * 3600

# A district's own count differs from its communities' sum by up to this share when nothing is wrong: calls
# logged in the next hour, duplicates merged. Well under the consistency rule's warning (10 %).
COUNT_NOISE = 0.025
# One district feed breaks in every run of this many days, during office hours, under-reporting for 3–6 hours
# by 20–40 %: long enough for a rule with `for: 2h` to fire, at both severities.
BROKEN_FEED_EVERY_DAYS = 3


def _stable_seed(*parts) -> int:
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


@dataclass(frozen=True)
class Units:
    """The units one indicator is reported for, with the attributes the models use."""

    ids: np.ndarray
    codes: np.ndarray
    population: np.ndarray
    centrality: np.ndarray  # 1 at the city centre, 0 at the edge
    district: np.ndarray    # index of the unit's district, for district-wide stress
    offset: np.ndarray      # seconds after the bucket start at which the unit reports


@dataclass(frozen=True)
class BrokenFeed:
    """A district's own feed under-reporting for some hours of one local day: a planned consistency failure."""

    district: int       # the district's index, as in Units.district
    day: int            # local calendar day, as a date ordinal
    start_hour: int     # local hour at which it breaks
    hours: int
    factor: float       # share of the true count it still reports

    def covers(self, local: datetime) -> bool:
        return local.toordinal() == self.day and self.start_hour <= local.hour < self.start_hour + self.hours


def broken_feed(seed: int, period: int, districts: int) -> BrokenFeed:
    """The one broken district feed in the `period`-th run of BROKEN_FEED_EVERY_DAYS local days."""
    rng = np.random.default_rng(_stable_seed(seed, "broken-feed", period))
    return BrokenFeed(district=int(rng.integers(districts)),
                      day=period * BROKEN_FEED_EVERY_DAYS + int(rng.integers(BROKEN_FEED_EVERY_DAYS)),
                      start_hour=8 + int(rng.integers(8)), hours=3 + int(rng.integers(4)),
                      factor=0.6 + 0.2 * float(rng.random()))


def first_history_start(now: float, zone: ZoneInfo, days: int) -> int:
    """The city's midnight `days` calendar days before today (across a daylight-saving change too), moved on to
    the next whole hour of UTC where the zone's offset is not whole hours."""
    day = datetime.fromtimestamp(now, zone).date() - timedelta(days=days)
    midnight = int(datetime.combine(day, time(0), zone).timestamp())
    return -(-midnight // 3600) * 3600


@register
class SimulatorConnector(Connector):
    type_name = "simulator"
    config_schema = (
        ConfigField("seed", int, default=2026, help="different seeds give different but repeatable cities"),
        ConfigField("backfill_days", int, default=7, help="history generated on the first run"),
        ConfigField("silent_share", float, default=0.01,
                    help="share of units that miss a report, so completeness is visibly below 100%"),
    )
    ordered = True

    def check(self) -> Health:
        units = len(self.context.tree.frame)
        if units <= 1:
            return Health(False, "no units loaded: run `onescreen seed-demo` or `onescreen import` first")
        return Health(True, f"simulating {len(self.context.catalog.reported())} indicators for {units} units")

    def fetch(self, since: str | None) -> Iterator[RecordBatch]:
        now = int(self.context.now)
        zone = ZoneInfo(self.context.timezone)
        start = int(float(since)) if since else self._first_start(now, zone)
        catalog = self.context.catalog
        indicators = [i for i in catalog.reported() if i.key in MODELS or self._counts_children(i)]
        levels = {i.level for i in indicators} | {catalog[OWN_COUNTS[i.key]].level
                                                   for i in indicators if i.key in OWN_COUNTS}
        units = {level: self._units(level) for level in levels}
        window_start = start
        while window_start <= now:
            window_end = min(window_start + WINDOW_SECONDS, now + 1)
            parts = [self._window(indicator, units, window_start, window_end, zone) for indicator in indicators]
            codes = np.concatenate([p[0] for p in parts])
            if len(codes):
                order = np.argsort(np.concatenate([p[2] for p in parts]), kind="stable")
                yield RecordBatch(pd.DataFrame({
                    "unit_code": codes[order],
                    "indicator": np.concatenate([p[1] for p in parts])[order],
                    "observed_at": np.concatenate([p[2] for p in parts])[order],
                    "value": np.concatenate([p[3] for p in parts])[order],
                }))
            window_start = window_end

    def _first_start(self, now: int, zone: ZoneInfo) -> int:
        """Where the first run's history starts: the city's midnight `backfill_days` ago, so every bucket of the
        history is whole: a first hour begun at 09:44 held a quarter of the city's reports, and a week later "the
        same hour last week" read it as the baseline (hotline +438 %). Hours are buckets of UTC: in a zone half an
        hour off (India), the start is the next hour's, and the first day misses its first half hour instead."""
        return first_history_start(now, zone, self.config["backfill_days"])

    def planned_broken_feeds(self, start: int, end: int) -> list[tuple[str, int, int, float]]:
        """The district feeds this city's own counts break in [start, end), as (district code, from, until,
        share still reported): when the consistency rule should fire, for a demo or a test."""
        districts = self._units(Level.DISTRICT)
        if not len(districts.ids):
            return []
        zone = ZoneInfo(self.context.timezone)
        first = datetime.fromtimestamp(start, zone).toordinal() // BROKEN_FEED_EVERY_DAYS
        last = datetime.fromtimestamp(end, zone).toordinal() // BROKEN_FEED_EVERY_DAYS
        code_of = dict(zip(districts.district, districts.codes))
        planned = []
        for period in range(first, last + 1):
            feed = broken_feed(self.config["seed"], period, len(districts.ids))
            since = int(datetime.combine(date.fromordinal(feed.day), time(feed.start_hour), zone).timestamp())
            until = since + feed.hours * 3600
            if since < end and until > start:
                planned.append((code_of[feed.district], since, until, feed.factor))
        return planned

    def _counts_children(self, indicator: Indicator) -> bool:
        """Whether `indicator` is a district's own count the simulator can make from its children's figures."""
        catalog = self.context.catalog
        child = OWN_COUNTS.get(indicator.key)
        return (child in catalog and child in MODELS and indicator.level == Level.DISTRICT
                and catalog[child].level > Level.DISTRICT
                and catalog[child].interval_seconds == indicator.interval_seconds)

    def _units(self, level: Level) -> Units:
        tree = self.context.tree
        frame = tree.at_level(level).sort_values("code")
        city = tree.frame.loc[tree.root_id]
        span = max(city["max_lon"] - city["min_lon"], city["max_lat"] - city["min_lat"]) / 2
        distance = np.hypot(frame["center_lon"] - city["center_lon"], frame["center_lat"] - city["center_lat"])
        districts = tree.at_level(Level.DISTRICT).index
        membership = tree.membership(level, include_self=True)
        district_id = membership[membership["ancestor_id"].isin(districts)].set_index("leaf_id")["ancestor_id"]
        district_of = (pd.Index(districts).get_indexer(district_id.reindex(frame.index).to_numpy())
                       if level >= Level.DISTRICT else np.zeros(len(frame), dtype=int))
        rng = np.random.default_rng(_stable_seed(self.config["seed"], "offsets", int(level)))
        return Units(ids=frame.index.to_numpy(), codes=frame["code"].to_numpy(dtype=object),
                     population=frame["population"].to_numpy(dtype=float),
                     centrality=np.clip(1 - distance.to_numpy() / span, 0, 1),
                     district=np.asarray(district_of), offset=rng.random(len(frame)))

    def _window(self, indicator: Indicator, units_by_level: dict[Level, Units], start: int, end: int, zone):
        """Every report of one indicator whose time falls in [start, end), as (codes, keys, times, values)."""
        units = units_by_level[indicator.level]
        interval = indicator.interval_seconds
        offsets = (units.offset * interval).astype(np.int64)
        # Daily reports follow the city's calendar day, as the daily roll-ups do.
        local = datetime.fromtimestamp(start, zone).utcoffset()
        first_bucket = bucket_start(start - interval, interval, int(local.total_seconds()) if local else 0)
        parts = []
        for bucket in range(first_bucket, end, interval):
            times = bucket + offsets
            inside = (times >= start) & (times < end)
            if not inside.any():
                continue
            values = self._values(indicator, units_by_level, bucket, zone)
            reported = inside & ~self._silent(indicator, units, bucket)
            parts.append((units.codes[reported], times[reported], values[reported]))
        if not parts:
            empty = np.array([], dtype=object)
            return empty, empty, np.array([], dtype=np.int64), np.array([], dtype=float)
        codes = np.concatenate([p[0] for p in parts])
        return (codes, np.full(len(codes), indicator.key, dtype=object),
                np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts]))

    def _silent(self, indicator: Indicator, units: Units, bucket: int) -> np.ndarray:
        rng = np.random.default_rng(_stable_seed(self.config["seed"], "silent", indicator.key, bucket))
        return rng.random(len(units.ids)) < self.config["silent_share"]

    def _values(self, indicator: Indicator, units_by_level: dict[Level, Units], bucket: int, zone) -> np.ndarray:
        if indicator.key in OWN_COUNTS:
            return self._own_count(indicator, units_by_level, bucket, zone)
        units = units_by_level[indicator.level]
        local = datetime.fromtimestamp(bucket, zone)
        clock = Clock(hour=local.hour + local.minute / 60, weekday=local.weekday(), day=bucket / 86400)
        rng = np.random.default_rng(_stable_seed(self.config["seed"], indicator.key, bucket))
        stress = self._district_stress(units, clock.day)
        spike = self._spikes(indicator, units, bucket)
        return MODELS[indicator.key](units, clock, rng, stress, spike)

    def _own_count(self, indicator: Indicator, units_by_level: dict[Level, Units], bucket: int, zone) -> np.ndarray:
        """Each district's own count: its communities' figures for the same bucket, summed, times a little
        counting noise, and cut short while its feed is broken. Silent communities are counted too: their feed
        missed the hour, the district's own system did not."""
        units = units_by_level[indicator.level]
        child = self.context.catalog[OWN_COUNTS[indicator.key]]
        children = units_by_level[child.level]
        counted = self._values(child, units_by_level, bucket, zone)
        districts = len(units.ids)  # own counts are per district, so units.district numbers them 0 … n-1
        totals = np.bincount(children.district, weights=counted, minlength=districts)[units.district]
        rng = np.random.default_rng(_stable_seed(self.config["seed"], indicator.key, bucket))
        noise = 1 + rng.uniform(-COUNT_NOISE, COUNT_NOISE, len(units.ids))
        local = datetime.fromtimestamp(bucket, zone)
        feed = broken_feed(self.config["seed"], local.toordinal() // BROKEN_FEED_EVERY_DAYS, districts)
        broken = (units.district == feed.district) & feed.covers(local)
        return np.round(totals * noise * np.where(broken, feed.factor, 1.0))

    def _district_stress(self, units: Units, day: float) -> np.ndarray:
        """Slow multi-day swings per district, so some districts run hot for a while and then recover."""
        rng = np.random.default_rng(_stable_seed(self.config["seed"], "stress"))
        districts = int(units.district.max()) + 1 if len(units.district) else 1
        phase = rng.random(districts) * 2 * np.pi
        period = 2 + rng.random(districts) * 3
        return 1 + 0.22 * np.sin(2 * np.pi * day / period[units.district] + phase[units.district])

    def _spikes(self, indicator: Indicator, units: Units, bucket: int) -> np.ndarray:
        """Incidents that last a few hours: a factor ≥ 1 per unit, 1 for most units most of the time."""
        block = bucket // (4 * 3600)
        # Indicators computed from one another share their incidents, so overdue never exceeds open.
        group = SHARED_SPIKES.get(indicator.key, indicator.key)
        rng = np.random.default_rng(_stable_seed(self.config["seed"], "spike", group, block))
        hit = rng.random(len(units.ids)) < 0.004
        return np.where(hit, 2.5 + 2.5 * rng.random(len(units.ids)), 1.0)


@dataclass(frozen=True)
class Clock:
    hour: float
    weekday: int
    day: float

    @property
    def weekend(self) -> bool:
        return self.weekday >= 5


def _bump(hour: float, centre: float, width: float) -> float:
    distance = min(abs(hour - centre), 24 - abs(hour - centre))
    return float(np.exp(-0.5 * (distance / width) ** 2))


def office_hours(clock: Clock) -> float:
    """Calls and complaints: a morning and an afternoon peak, quiet nights, quieter weekends."""
    level = 0.15 + 1.1 * _bump(clock.hour, 10, 2) + 0.9 * _bump(clock.hour, 15, 2) + 0.3 * _bump(clock.hour, 20, 2)
    return level * (0.75 if clock.weekend else 1.0)


def rush_hours(clock: Clock) -> float:
    if clock.weekend:
        return 0.2 + 0.6 * _bump(clock.hour, 15, 4)
    return 0.1 + 0.9 * _bump(clock.hour, 8.3, 1.2) + 1.0 * _bump(clock.hour, 18, 1.5) + 0.35 * _bump(clock.hour, 13, 3)


def daytime(clock: Clock) -> float:
    return 0.2 + 0.8 * _bump(clock.hour, 14, 4.5)


def _hotline(units: Units, clock: Clock, rng, stress, spike):
    rate = units.population / 4000 * 0.12 * office_hours(clock) * stress * spike
    return rng.poisson(rate).astype(float)


def _incidents_open(units: Units, clock: Clock, rng, stress, spike):
    base = units.population / 700 * (0.9 + 0.2 * np.sin(2 * np.pi * clock.day / 7)) * stress
    backlog = base * (1 + 0.25 * (spike - 1)) * (1 + 0.15 * daytime(clock))
    # Own noise stream, so the overdue model can recompute exactly the same open counts.
    noise = np.random.default_rng(_stable_seed("open", clock.day, len(units.ids))).standard_normal(len(units.ids))
    return np.round(backlog * (1 + 0.06 * noise)).clip(0)


def _incidents_overdue(units: Units, clock: Clock, rng, stress, spike):
    open_now = _incidents_open(units, clock, rng, stress, spike)
    share = (0.05 * stress ** 3 * spike).clip(0, 0.9)
    return rng.binomial(open_now.astype(np.int64), share).astype(float)


def _fire_alarms(units: Units, clock: Clock, rng, stress, spike):
    rate = units.population / 4000 * 0.004 * (0.5 + _bump(clock.hour, 19, 3)) * spike ** 1.5
    return rng.poisson(rate).astype(float)


def _rain(clock: Clock, seed_day: int) -> float:
    """City-wide storms: a few afternoons a fortnight see a cloudburst lasting some hours."""
    rng = np.random.default_rng(_stable_seed("storm", seed_day))
    if rng.random() > 0.2:
        return 0.0
    start, length = 12 + 6 * rng.random(), 2 + 4 * rng.random()
    return float(np.clip(1 - abs(clock.hour - (start + length / 2)) / (length / 2), 0, 1) * (0.6 + 0.8 * rng.random()))


def _waterlogging(units: Units, clock: Clock, rng, stress, spike):
    lowland = np.random.default_rng(_stable_seed("lowland", len(units.ids))).random(len(units.ids)) ** 3
    rain = _rain(clock, int(clock.day))
    depth = rain * (5 + 45 * lowland) + (spike > 1) * 8 * rng.random(len(units.ids))
    return np.round(np.clip(depth + rng.normal(0, 0.8, len(units.ids)) - 2, 0, None), 1)


def _garbage(units: Units, clock: Clock, rng, stress, spike):
    base = 93 - 9 * np.random.default_rng(_stable_seed("garbage", len(units.ids))).random(len(units.ids)) ** 4
    return np.round(np.clip(base + rng.normal(0, 1.5, len(units.ids)) - 6 * (spike > 1), 50, 100), 1)


def _elderly(units: Units, clock: Clock, rng, stress, spike):
    base = 91 - 10 * np.random.default_rng(_stable_seed("elderly", len(units.ids))).random(len(units.ids)) ** 3
    return np.round(np.clip(base + rng.normal(0, 2, len(units.ids)) - 8 * (spike > 1), 40, 100), 1)


def _pm25(units: Units, clock: Clock, rng, stress, spike):
    regional = 24 + 22 * (1 + np.sin(2 * np.pi * clock.day / 5.3)) + 9 * np.sin(2 * np.pi * clock.day / 1.7)
    local = regional * (0.85 + 0.3 * units.centrality) * (0.9 + 0.25 * rush_hours(clock) / 1.1)
    noise = np.random.default_rng(_stable_seed("pm25", clock.day, len(units.ids))).normal(0, 4, len(units.ids))
    return np.round(np.clip(local * spike ** 0.6 + noise, 3, None))


# HJ 633-2012 breakpoints for PM2.5 (24 h) → individual AQI.
_PM25_BREAKS = np.array([0, 35, 75, 115, 150, 250, 350, 500])
_IAQI_BREAKS = np.array([0, 50, 100, 150, 200, 300, 400, 500])


def _aqi(units: Units, clock: Clock, rng, stress, spike):
    pm25 = _pm25(units, clock, rng, stress, spike)
    return np.round(np.interp(pm25, _PM25_BREAKS, _IAQI_BREAKS) + rng.normal(0, 3, len(units.ids))).clip(5)


def _noise(units: Units, clock: Clock, rng, stress, spike):
    level = 47 + 9 * daytime(clock) + 6 * units.centrality + 3 * rush_hours(clock)
    return np.round(level + 4 * (spike > 1) + rng.normal(0, 1.2, len(units.ids)), 1)


def _traffic(units: Units, clock: Clock, rng, stress, spike):
    index = 1.2 + 5.2 * rush_hours(clock) * (0.6 + 0.6 * units.centrality) * stress ** 0.5
    return np.round(np.clip(index * spike ** 0.35 + rng.normal(0, 0.3, len(units.ids)), 0, 10), 1)


def _inflow(units: Units, clock: Clock, rng, stress, spike):
    hub = 1 + 2.5 * np.random.default_rng(_stable_seed("hubs", len(units.ids))).random(len(units.ids)) ** 8
    flow = units.population * 0.028 * rush_hours(clock) * hub * (0.7 + 0.6 * units.centrality) * spike ** 0.5
    return np.round(flow * (1 + 0.05 * rng.standard_normal(len(units.ids)))).clip(0)


def _water_pressure(units: Units, clock: Clock, rng, stress, spike):
    demand = 0.5 * _bump(clock.hour, 7.5, 1.5) + 0.6 * _bump(clock.hour, 19.5, 2)
    # A spike here is a main break: pressure falls sharply in the streets it feeds.
    pressure = 0.34 - 0.07 * demand - 0.03 * (1 - units.centrality) - 0.035 * (spike - 1)
    return np.round(np.clip(pressure + rng.normal(0, 0.006, len(units.ids)), 0.05, 0.6), 3)


def _power_load(units: Units, clock: Clock, rng, stress, spike):
    heat = 1 + 0.08 * np.sin(2 * np.pi * clock.day / 6.1)
    demand = 0.45 + 0.3 * _bump(clock.hour, 11, 3) + 0.38 * _bump(clock.hour, 20, 2.5)
    ratio = 100 * demand * heat * (0.85 + 0.15 * units.centrality) * stress ** 0.7 * spike ** 0.15
    return np.round(np.clip(ratio + rng.normal(0, 0.8, len(units.ids)), 5, 120), 1)


SHARED_SPIKES = {"grid_incidents_overdue": "grid_incidents_open", "aqi": "pm25"}

# A district's own count of what its communities also report: its key → the communities' indicator.
OWN_COUNTS = {"hotline_complaints_district": "hotline_complaints"}

MODELS: dict[str, Callable] = {
    "hotline_complaints": _hotline,
    "grid_incidents_open": _incidents_open,
    "grid_incidents_overdue": _incidents_overdue,
    "fire_alarms": _fire_alarms,
    "waterlogging_depth": _waterlogging,
    "garbage_sorting_compliance": _garbage,
    "elderly_care_coverage": _elderly,
    "pm25": _pm25,
    "aqi": _aqi,
    "noise": _noise,
    "traffic_congestion": _traffic,
    "population_inflow": _inflow,
    "water_pressure": _water_pressure,
    "power_load_ratio": _power_load,
}

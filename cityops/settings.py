"""Deployment settings, read once from the environment (12-factor) with safe offline defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{(PROJECT_ROOT / 'var' / 'onescreen.db').as_posix()}"
    catalog_path: Path = DATA_DIR / "indicators.yaml"
    connectors_path: Path = DATA_DIR / "connectors.yaml"
    alerts_path: Path = DATA_DIR / "alerts.yaml"
    wall_path: Path = DATA_DIR / "wall.yaml"  # the wall display's playlist (cityops/playlist.py)
    # Raw payloads of connector runs, compressed (connectors/archive.py); retention is set per connector.
    archive_dir: Path = PROJECT_ROOT / "var" / "archive"
    city_name_zh: str = "海城市"
    city_name_en: str = "Haicheng"
    timezone: str = "Asia/Shanghai"
    # Base-map tiles are off by default: city intranets have no internet. A city may point this at its own
    # tile server, e.g. http://gis.intranet/tiles/{z}/{x}/{y}.png
    tile_url: str | None = None
    tile_attribution: str = ""
    # The shared response cache (cityops/response_cache.py): None or "memory" (per process), "off", or a Redis URL
    # (redis://127.0.0.1:6379/0) shared by every web worker.
    cache_url: str | None = None
    refresh_seconds: int = 30
    demo_seed: int = 2026
    backfill_days: int = 7
    run_scheduler: bool = True
    language: str = "zh"
    host: str = "127.0.0.1"
    port: int = 8050
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        base = cls()
        values: dict = {}
        if env.get("DATABASE_URL"):
            values["database_url"] = env["DATABASE_URL"]
        for name, attr in (("ONESCREEN_CATALOG", "catalog_path"), ("ONESCREEN_CONNECTORS", "connectors_path"),
                           ("ONESCREEN_ALERT_RULES", "alerts_path"),
                           ("ONESCREEN_WALL", "wall_path"),
                           ("ONESCREEN_ARCHIVE_DIR", "archive_dir")):
            if env.get(name):
                values[attr] = Path(env[name])
        for name, attr in (
            ("ONESCREEN_CITY_NAME_ZH", "city_name_zh"),
            ("ONESCREEN_CITY_NAME_EN", "city_name_en"),
            ("ONESCREEN_TIMEZONE", "timezone"),
            ("ONESCREEN_TILE_URL", "tile_url"),
            ("ONESCREEN_TILE_ATTRIBUTION", "tile_attribution"),
            ("ONESCREEN_CACHE_URL", "cache_url"),
            ("ONESCREEN_LANGUAGE", "language"),
            ("ONESCREEN_HOST", "host"),
        ):
            if env.get(name):
                values[attr] = env[name]
        for name, attr in (
            ("ONESCREEN_REFRESH_SECONDS", "refresh_seconds"),
            ("ONESCREEN_DEMO_SEED", "demo_seed"),
            ("ONESCREEN_BACKFILL_DAYS", "backfill_days"),
            ("ONESCREEN_PORT", "port"),
        ):
            if env.get(name):
                try:
                    values[attr] = int(env[name])
                except ValueError:
                    raise SettingsError(f"environment variable {name}={env[name]!r} is not a whole number") from None
        if env.get("ONESCREEN_SCHEDULER"):
            values["run_scheduler"] = env["ONESCREEN_SCHEDULER"].strip().lower() not in ("0", "false", "no", "off")
        settings = replace(base, **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.language not in ("zh", "en"):
            raise SettingsError(f"ONESCREEN_LANGUAGE={self.language!r}: use 'zh' or 'en'")
        if self.refresh_seconds < 5:
            raise SettingsError(f"ONESCREEN_REFRESH_SECONDS={self.refresh_seconds}: use 5 seconds or more")
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception:
            raise SettingsError(
                f"ONESCREEN_TIMEZONE={self.timezone!r} is not an IANA time zone (e.g. Asia/Shanghai)"
            ) from None

"""What every command needs: the settings, the catalog and the connectors, each failing with one clear message
(the file, the entry and the fix) instead of a traceback."""

from __future__ import annotations

import click

from cityops.settings import Settings, SettingsError


def settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as error:
        raise click.ClickException(str(error)) from None


def catalog(settings: Settings):
    from cityops.catalog import CatalogError, load_catalog

    try:
        return load_catalog(settings.catalog_path)
    except CatalogError as error:
        raise click.ClickException(str(error)) from None


def instances(settings: Settings):
    import connectors  # noqa: F401  (registers the built-in types)
    from connectors.config import ConnectorConfigError, load_connectors

    try:
        return load_connectors(settings.connectors_path, catalog(settings).keys, settings.timezone)
    except ConnectorConfigError as error:
        raise click.ClickException(str(error)) from None


def instance(settings: Settings, name: str):
    for found in instances(settings):
        if found.name == name:
            return found
    names = ", ".join(i.name for i in instances(settings))
    raise click.ClickException(f"no connector named {name!r} in {settings.connectors_path}; configured: {names}")

"""Connector plugins. Importing this package registers every built-in type."""

# Importing a module registers the types it defines.
from connectors import files, http_json, mqtt, open311, sensorthings, simulator, sql  # noqa: F401
from connectors.base import REGISTRY, Connector, Record, register  # noqa: F401

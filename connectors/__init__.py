"""Connector plugins. Importing this package registers every built-in type."""

from connectors import simulator  # noqa: F401  (registers the type)
from connectors.base import REGISTRY, Connector, Record, register  # noqa: F401

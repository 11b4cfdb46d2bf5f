"""Thin adapters between the page and the domain: read inputs, call pure functions, return outputs.

Each feature module registers its callbacks with `@dash.callback`; no module imports the app object.
"""

from __future__ import annotations

import importlib
import sys

from dash import _callback

FEATURES = ("header", "kpi", "loading", "map", "ranking", "selection", "trend", "sources", "alerts", "navigation",
            "comparison", "wall", "exports")


def register_callbacks() -> None:
    """Register every feature's callbacks for the app being created.

    Dash moves `@dash.callback` registrations into the first app that starts serving and empties its global
    registry, so a second app in the same process (each test builds a fresh one) would start with none.
    Clearing the registry and re-executing the feature modules gives every app exactly one set.
    """
    _callback.GLOBAL_CALLBACK_LIST.clear()
    _callback.GLOBAL_CALLBACK_MAP.clear()
    _callback.GLOBAL_INLINE_SCRIPTS.clear()
    for name in FEATURES:
        module_name = f"{__name__}.{name}"
        if module_name in sys.modules:
            importlib.reload(sys.modules[module_name])
        else:
            importlib.import_module(module_name)

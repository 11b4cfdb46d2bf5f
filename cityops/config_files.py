"""Reading the deployment's YAML files (indicators, alert rules, connectors): one way to say what is wrong."""

from __future__ import annotations

from pathlib import Path

import yaml


def yaml_entries(path: Path, key: str, error: type[ValueError], missing_hint: str) -> list:
    """The list under the top-level `key` of a YAML file; `error` naming the file and the fix when the file is
    missing, not YAML, or holds no such list."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: file not found; {missing_hint}") from None
    except yaml.YAMLError as problem:
        raise error(f"{path}: not valid YAML: {problem}") from None
    if not isinstance(document, dict) or not isinstance(document.get(key), list):
        raise error(f"{path}: expected a top-level '{key}:' list")
    return document[key]

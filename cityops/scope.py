"""Viewer scope: the subtree of the city a viewer may see. Every data query takes one.

Login and roles arrive later; today every viewer gets the whole city, but the seam is here so that no query
is written without a scope and callbacks never trust a unit sent by the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from cityops.models import Unit
from cityops.tree import UnitTree, load_tree


class OutOfScope(PermissionError):
    """The viewer asked for a unit outside the part of the city they may see."""


@dataclass(frozen=True)
class Scope:
    root_id: int
    root_code: str
    lft: int
    rgt: int

    def contains_bounds(self, lft: int) -> bool:
        return self.lft <= lft <= self.rgt

    def contains(self, tree: UnitTree, unit_id: int) -> bool:
        # The tree's row index (a dict) rather than pandas: every callback asks, some for each unit it lists, and
        # two pandas look-ups cost ~20 µs where a dict costs well under one.
        try:
            row = tree.row(unit_id)
        except (KeyError, TypeError):  # an unknown id, or something that is no id at all
            return False
        return self.lft <= row.lft <= self.rgt

    def clause(self) -> ColumnElement[bool]:
        """A WHERE clause limiting `units` to this subtree (one integer range on an index)."""
        return Unit.lft.between(self.lft, self.rgt)

    def require(self, tree: UnitTree, unit_id: int) -> None:
        if not self.contains(tree, unit_id):
            raise OutOfScope(f"unit {unit_id} is outside the viewer's scope {self.root_code}")


def scope_of_unit(tree: UnitTree, unit_id: int) -> Scope:
    row = tree.row(unit_id)
    return Scope(unit_id, row.code, row.lft, row.rgt)


@dataclass(frozen=True)
class Viewer:
    """Who is looking. Anonymous viewers see the whole city until login and roles exist."""

    name: str = "anonymous"
    root_code: str | None = None


def viewer_scope(session: Session, viewer: Viewer, tree: UnitTree | None = None) -> Scope:
    tree = tree if tree is not None else load_tree(session)
    if viewer.root_code is None:
        return scope_of_unit(tree, tree.root_id)
    unit_id = tree.id_by_code.get(viewer.root_code)
    if unit_id is None:
        raise OutOfScope(f"viewer {viewer.name} is assigned to unknown unit {viewer.root_code}")
    return scope_of_unit(tree, unit_id)

"""Alert counts per indicator for the KPI cards' badges, always within the viewer's scope.

queries.alert_counts answers "how many open alerts under each of these units" (the map's badges, the panel
heading); the KPI panel asks the other way round: under the one unit being viewed, how many open alerts does each
indicator have. Same meaning of open and overdue (one definition, queries.overdue_clause), same subtree rule: an
alert in a community counts for its street, district and city — the subtree is one range of nested-set bounds,
so the query is one indexed range join and a GROUP BY, whatever the level viewed.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cityops.alerts.queries import overdue_clause
from cityops.models import Alert, Unit
from cityops.scope import Scope
from cityops.tree import UnitTree

COUNT_COLUMNS = ["open", "overdue", "critical"]


def indicator_alert_counts(session: Session, scope: Scope, tree: UnitTree, ids: dict[str, int], unit_id: int,
                           now: int, own: bool = False) -> pd.DataFrame:
    """Per indicator with any open alert in the subtree of `unit_id` (with `own`, at the unit itself): open,
    overdue and critical open alerts. Index: indicator key (indicators without open alerts are absent; so are
    source rules' alerts, which belong to no indicator). OutOfScope when the viewer may not see `unit_id`."""
    scope.require(tree, unit_id)
    lft, rgt = int(tree.frame.at[unit_id, "lft"]), int(tree.frame.at[unit_id, "rgt"])
    keys = {ident: key for key, ident in ids.items()}
    rows = session.execute(
        select(Alert.indicator_id, func.count(),
               func.sum(case((overdue_clause(now), 1), else_=0)),
               func.sum(case((Alert.severity == "critical", 1), else_=0)))
        .join(Unit, Unit.id == Alert.unit_id)
        .where(Alert.closed_at.is_(None), Alert.phase != "pending",
               Alert.unit_id == unit_id if own else Unit.lft.between(lft, rgt))
        .group_by(Alert.indicator_id)).all()
    counts = pd.DataFrame([(keys[ident], int(n), int(late or 0), int(worst or 0)) for ident, n, late, worst in rows
                           if ident in keys], columns=["indicator", *COUNT_COLUMNS])
    return counts.set_index("indicator")

"""The order a unit's children are compared in: worst first for an indicator. Shared by the comparison view,
its exports and the report, so that every one of them lists the children in the same order."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cityops.catalog import Direction, Indicator
from cityops.status import Status

CURRENT = (Status.NORMAL.value, Status.WARNING.value, Status.CRITICAL.value)


def ranked_children(children: pd.DataFrame, indicator: Indicator) -> pd.DataFrame:
    """Worst first: current values by value in the indicator's direction (the highest AQI, the lowest sorting
    compliance), then stale values the same way (too old to rank among current ones, still worth seeing), then
    units with no value at all; ties by code, so the order never flickers between refreshes."""
    if children.empty:
        return children
    value = pd.to_numeric(children["value"], errors="coerce")
    has_value = value.notna()
    group = np.where(has_value & children["status"].isin(CURRENT), 0, np.where(has_value, 1, 2))
    badness = value if indicator.direction == Direction.HIGHER_IS_WORSE else -value
    order = pd.DataFrame({"group": group, "badness": badness.fillna(0).to_numpy(), "code": children["code"]},
                         index=children.index)
    ordered = order.sort_values(["group", "badness", "code"], ascending=[True, False, True]).index
    return children.loc[ordered].reset_index(drop=True)

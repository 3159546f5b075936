"""The activity aggregates on Spark: the cube and hour × weekday, as on one machine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from kaudit_analytics import activity
from kaudit_analytics import schema as s
from kaudit_analytics.spark._arrow import ORDER, additive

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

__all__ = ["activity_by_hour_and_weekday", "activity_cube"]


_FIRST = "__kaudit_first"


def activity_cube(events: DataFrame) -> pl.DataFrame:
    """``activity.activity_cube`` on Spark (collected): ``cube_parts`` per partition of
    requests, summed by Spark per raw key, labelled by ``cube_from_parts``."""
    from pyspark.sql import functions as F  # noqa: N812

    def combine(name: str) -> Any:
        if name == s.GROUPS:
            # Where the parts of one key disagree on ``groups``, keep the first event's, as
            # polars does on one machine: each part carries where its first event sits.
            return F.min_by(s.GROUPS, _FIRST).alias(s.GROUPS)
        if name == _FIRST:
            return F.min(_FIRST).alias(_FIRST)
        return F.sum(f"`{name}`").alias(name)

    summed = additive(
        events,
        activity.cube_parts,
        activity.CUBE_RAW_KEYS,
        combine,
        extra=[pl.struct(*ORDER).first().alias(_FIRST)],
    )
    return activity.cube_from_parts(summed.drop(_FIRST).lazy()).collect()


def activity_by_hour_and_weekday(events: DataFrame) -> pl.DataFrame:
    """``activity.activity_by_hour_and_weekday`` on Spark (collected)."""
    from pyspark.sql import functions as F  # noqa: N812

    summed = additive(
        events,
        activity.hour_and_weekday_parts,
        ("weekday", "hour"),
        lambda name: F.sum(name).alias(name),
    )
    return activity.hour_and_weekday_from_parts(summed.lazy()).collect()

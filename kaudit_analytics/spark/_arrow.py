"""Spark plumbing: polars and Arrow types in Spark, tasks over Arrow batches, additive sums.

Private to ``kaudit_analytics.spark``: the public functions are written with these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from kaudit_analytics import schema as s

if TYPE_CHECKING:
    from polars._typing import PolarsDataType
    from pyspark.sql import DataFrame

#: Columns ``scan`` adds so that a task can put its rows back in the lake's reading order.
FILE, ROW = "__kaudit_file", "__kaudit_row"
ORDER = (s.CLUSTER, s.DATE, FILE, ROW)
#: Rows per Arrow batch handed to a Python worker: polars is efficient on large batches.
BATCH_ROWS = 100_000


SIMPLE_TYPES: tuple[tuple[type[pl.DataType], str, pa.DataType], ...] = (
    # polars type, Spark SQL type, the Arrow type Spark exchanges it as
    (pl.String, "string", pa.string()),
    (pl.Enum, "string", pa.string()),  # enums and categoricals travel as strings
    (pl.Categorical, "string", pa.string()),
    (pl.Boolean, "boolean", pa.bool_()),
    (pl.Int8, "tinyint", pa.int8()),
    (pl.Int16, "smallint", pa.int16()),
    (pl.Int32, "int", pa.int32()),
    (pl.Int64, "bigint", pa.int64()),
    (pl.UInt8, "smallint", pa.int16()),
    (pl.UInt16, "int", pa.int32()),
    (pl.UInt32, "bigint", pa.int64()),
    (pl.Float64, "double", pa.float64()),
    (pl.Date, "date", pa.date32()),
    (pl.Datetime, "timestamp", pa.timestamp("us", tz="UTC")),
)


def spark_types(dtype: PolarsDataType) -> tuple[str, pa.DataType]:
    """The Spark SQL type and the Arrow type of a polars type."""
    if isinstance(dtype, pl.List):
        ddl, arrow = spark_types(dtype.inner)
        return f"array<{ddl}>", pa.list_(arrow)
    if isinstance(dtype, pl.Struct):
        fields = [(f.name, *spark_types(f.dtype)) for f in dtype.fields]
        ddl = "struct<" + ", ".join(f"`{name}`: {kind}" for name, kind, _ in fields) + ">"
        return ddl, pa.struct([(name, arrow) for name, _, arrow in fields])
    for kind, ddl, arrow in SIMPLE_TYPES:
        if dtype == kind or isinstance(dtype, kind):
            return ddl, arrow
    msg = f"no Spark type for {dtype}"
    raise TypeError(msg)


def spark_schema(schema: Mapping[str, pl.DataType]) -> str:
    return ", ".join(f"`{name}` {spark_types(dtype)[0]}" for name, dtype in schema.items())


def arrow_schema(schema: Mapping[str, pl.DataType]) -> pa.Schema:
    return pa.schema([(name, spark_types(dtype)[1]) for name, dtype in schema.items()])


@dataclass(frozen=True)
class Out:
    """What a Python worker returns to Spark: the DDL Spark is told, the Arrow it gets."""

    ddl: str
    arrow: pa.Schema

    @classmethod
    def of(cls, schema: Mapping[str, pl.DataType]) -> Out:
        return cls(spark_schema(schema), arrow_schema(schema))

    def batches(self, frame: pl.DataFrame) -> Iterator[pa.RecordBatch]:
        yield from self.table(frame).to_batches()

    def table(self, frame: pl.DataFrame) -> pa.Table:
        plain = frame.with_columns(pl.col(pl.Enum, pl.Categorical).cast(pl.String))
        return plain.select(self.arrow.names).to_arrow().cast(self.arrow)


def typed(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """Spark's Arrow columns cast back to the polars types of ``schema`` (where named)."""
    return frame.with_columns(
        pl.col(name).cast(dtype) for name, dtype in schema.items() if name in frame.columns
    )


def task_frame(batches: Iterable[pa.RecordBatch]) -> pl.DataFrame:
    """A task's batches as one polars frame in the lake's reading order."""
    tables = [pa.Table.from_batches([batch]) for batch in batches]
    if not tables:
        return pl.DataFrame()
    frame = pl.from_arrow(pa.concat_tables(tables))
    assert isinstance(frame, pl.DataFrame)
    frame = typed(frame, s.AUDIT_SCHEMA)
    if all(name in frame.columns for name in ORDER):
        frame = frame.sort(ORDER)
    return frame


def to_polars(df: DataFrame, schema: Mapping[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Collect a (small, aggregated) Spark DataFrame to polars."""
    frame = pl.from_arrow(df.toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame if schema is None else typed(frame, schema)


def columns_read(step: Callable[[pl.LazyFrame], pl.LazyFrame]) -> list[str]:
    """The events table's columns ``step`` reads: the ones whose absence breaks its plan.

    Asking polars, instead of listing them by hand here, keeps this module from drifting when
    an analysis starts reading another column.
    """
    empty = s.empty_events().lazy()
    needed = []
    for name in s.AUDIT_SCHEMA:
        try:
            step(empty.drop(name)).collect_schema()
        except pl.exceptions.ColumnNotFoundError:
            needed.append(name)
    return needed


def narrow(events: DataFrame, step: Callable[[pl.LazyFrame], pl.LazyFrame]) -> DataFrame:
    """Only the columns ``step`` reads, plus the reading-order columns."""
    keep = dict.fromkeys([*columns_read(step), *ORDER])
    return events.select(*[f"`{name}`" for name in keep if name in events.columns])


def by_request(events: DataFrame) -> DataFrame:
    """Every event of a request in one partition (the request is (cluster, audit_id))."""
    return events.repartition(s.AUDIT_ID)


def spark_sum(name: str) -> Any:
    from pyspark.sql import functions as F  # noqa: N812

    return F.sum(name).alias(name)


def additive(
    events: DataFrame,
    parts: Callable[..., pl.LazyFrame],
    keys: Sequence[str],
    combine: Callable[[str], Any],
    *,
    extra: Sequence[pl.Expr] = (),
) -> pl.DataFrame:
    """``parts`` per partition of requests, combined by Spark over ``keys``.

    ``extra`` aggregations (over the reading-order columns) go into ``parts`` as its own.
    """

    def run(frame: pl.LazyFrame) -> pl.LazyFrame:
        return parts(frame, *extra)

    probe = (
        s.empty_events()
        .lazy()
        .with_columns(pl.lit("", dtype=pl.String).alias(FILE), pl.lit(0, dtype=pl.Int64).alias(ROW))
    )
    schema = run(probe).collect_schema()
    out = Out.of(schema)

    def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        frame = task_frame(batches)
        if not frame.is_empty():
            yield from out.batches(run(frame.lazy()).collect())

    combined = (
        by_request(narrow(events, parts))
        .mapInArrow(per_partition, out.ddl)
        .groupBy(*[f"`{k}`" for k in keys])
        .agg(*[combine(name) for name in schema.names() if name not in keys])
    )
    return to_polars(combined, schema).select(schema.names())


def per_batch_sum(
    frame: DataFrame,
    step: Callable[[pl.LazyFrame], pl.LazyFrame],
    schema: Mapping[str, pl.DataType],
    keys: Sequence[str],
    input_schema: Mapping[str, pl.DataType],
) -> pl.DataFrame:
    """A row-wise additive ``step`` per Arrow batch, summed by Spark over ``keys``."""
    out = Out.of(schema)

    def per_batch(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            rows = typed(pl.DataFrame(pl.from_arrow(batch)), input_schema)
            yield from out.batches(step(rows.lazy()).collect())

    summed = (
        frame.mapInArrow(per_batch, out.ddl)
        .groupBy(*keys)
        .agg(*[spark_sum(name) for name in schema if name not in keys])
    )
    return to_polars(summed, schema)

"""The SparkSession the lake needs: UTC, quiet logs, large Arrow batches."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from kaudit_analytics.spark._arrow import BATCH_ROWS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["SparkUnavailableError", "session"]


class SparkUnavailableError(RuntimeError):
    """Spark cannot start here: pyspark or a Java runtime is missing."""


# --------------------------------------------------------------------------- the session


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java")


def session(
    master: str = "local[*]",
    *,
    app_name: str = "kaudit",
    local_dir: str | os.PathLike[str] | None = None,
    ui: bool = False,
    conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """A SparkSession set up for the lake: UTC, quiet logs, large Arrow batches.

    Parameters
    ----------
    master
        ``local[N]``, ``spark://host:7077``, ``yarn``, ``k8s://…``.
    local_dir
        Spark's scratch space (shuffle files, spills); Spark's default when None.
    ui
        Start the Spark web UI (and its REST API, which ``bench/bench_spark.py`` reads).
    conf
        Further Spark settings (executor memory, S3 credentials provider …).

    Raises
    ------
    SparkUnavailableError
        When pyspark is not installed or no Java runtime is found.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        msg = "the Spark engine needs pyspark: pip install 'kaudit-analytics[spark]'"
        raise SparkUnavailableError(msg) from exc
    if _java() is None:
        msg = (
            "the Spark engine needs a Java 17+ runtime (e.g. apt-get install "
            "openjdk-17-jre-headless) and none was found on PATH or in JAVA_HOME"
        )
        raise SparkUnavailableError(msg)
    # Python workers run this interpreter (with polars and this package) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    quiet = resources.files("kaudit_analytics.spark") / "log4j2.properties"
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", str(ui).lower())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{quiet}")
        .config("spark.executor.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{quiet}")
    )
    if local_dir is not None:
        builder = builder.config("spark.local.dir", str(local_dir))
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark

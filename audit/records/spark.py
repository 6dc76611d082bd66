"""The Spark engine: run a version's `compute_spark` on Apache Spark (PySpark).

The snapshot's inputs are exported to Parquet (exports.py), Spark reads them, the version's
stored source computes on them, and Spark writes the scores to Parquet; runs.py reads them back
through the same output contract check as a local run. pyspark is imported only here, and only
when a run asks for this engine. One SparkSession per process (Spark allows one context): it is
kept between runs and replaced when a run asks for another master or configuration.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ..errors import AuditError

DEFAULT_MASTER = "local[2]"
_MASTER = re.compile(r"^(local(\[(\*|[1-9]\d*)(,[1-9]\d*)?\])?|spark://[\w.-]+:\d+(,[\w.-]+:\d+)*|yarn"
                     r"|k8s://\S+)$")
_LOCAL = re.compile(r"^local(\[(\*|\d+)(,\d+)?\])?$")


@dataclass(frozen=True)
class SparkOptions:
    """Where and how a Spark run runs: the master URL, extra Spark settings, the export folder."""
    master: str = DEFAULT_MASTER
    conf: tuple[tuple[str, str], ...] = ()
    data_dir: Path | None = None


def check_master(master: str) -> str:
    if not _MASTER.match(master or ""):
        raise AuditError(f'--master "{master}" is not a Spark master URL; use local[2] (N cores on this '
                         "machine), spark://HOST:7077 or yarn")
    return master


def parse_conf(items: list[str] | tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """`key=value` settings, as given to --conf."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not key.startswith("spark."):
            raise AuditError(f'--conf "{item}" is not a Spark setting; give KEY=VALUE with a spark.* key, '
                             "e.g. --conf spark.executor.memory=8g")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def java_path() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").is_file():
        return str(Path(home, "bin", "java"))
    return shutil.which("java")


def require() -> None:
    """pyspark and a Java runtime are there, or one clear line says what to install."""
    if importlib.util.find_spec("pyspark") is None:
        raise AuditError("--engine spark needs pyspark, which is not installed; "
                         "pip install 'audit[spark]' (make test installs it)")
    if java_path() is None:
        raise AuditError("--engine spark needs Java 17 or later: no java on PATH and JAVA_HOME is not set; "
                         "install a JRE (Debian: apt-get install openjdk-17-jre-headless)")


def check_version(module: types.ModuleType, label: str) -> None:
    if not callable(getattr(module, "compute_spark", None)):
        raise AuditError(f"algorithm {label} has no compute_spark(), so it cannot run with --engine spark; "
                         "score it with --engine local, or register a version that defines compute_spark")


_session: Any = None
_session_key: tuple | None = None


def _settings(options: SparkOptions) -> dict[str, str]:
    local = _LOCAL.match(options.master)
    cores = 0 if not local else 1 if local.group(2) is None else (os.cpu_count() or 1) if local.group(2) == "*" \
        else int(local.group(2))
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                "spark.sql.session.timeZone": "UTC", "spark.sql.execution.arrow.pyspark.enabled": "true"}
    if local:
        # a small machine: few shuffle partitions, and enough driver memory for 10M edges
        settings |= {"spark.sql.shuffle.partitions": str(max(2, 2 * cores)), "spark.driver.memory": "4g",
                     "spark.pyspark.python": sys.executable, "spark.pyspark.driver.python": sys.executable}
    return settings | dict(options.conf)


def session(options: SparkOptions):
    """The process's SparkSession for these options (started on first use)."""
    global _session, _session_key
    require()
    check_master(options.master)
    key = (options.master, tuple(sorted(_settings(options).items())))
    if _session is not None and _session_key == key:
        return _session
    stop()
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession
    builder = SparkSession.builder.master(options.master).appName("audit")
    for k, v in _settings(options).items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        raise AuditError(f"Spark did not start with --master {options.master}: {_first_line(exc)}") from None
    spark.sparkContext.setLogLevel("ERROR")
    _session, _session_key = spark, key
    return spark


def stop() -> None:
    """Stop the process's SparkSession, if one runs."""
    global _session, _session_key
    if _session is not None:
        _session.stop()
    _session, _session_key = None, None


def describe(spark, options: SparkOptions) -> dict[str, Any]:
    """What a Spark run records besides the library versions: Spark, Java, master, partitions."""
    return {"spark": spark.version, "java": spark.sparkContext._jvm.java.lang.System.getProperty("java.version"),
            "master": options.master, "partitions": int(spark.conf.get("spark.sql.shuffle.partitions")),
            "pyspark": spark.version}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def compute(module: types.ModuleType, label: str, params: dict, folder: Path, out: Path,
            options: SparkOptions) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Run MODULE.compute_spark on the Parquet inputs in FOLDER; Spark writes the result to OUT, which
    is read back in account order. Returns the result and what the run records about the engine."""
    spark = session(options)
    interactions = spark.read.parquet(str(folder / "interactions.parquet"))
    accounts = spark.read.parquet(str(folder / "accounts.parquet"))
    try:
        result = module.compute_spark(spark, interactions, accounts, params)
        if not hasattr(result, "write"):
            raise AuditError(f"algorithm {label}: compute_spark() returned {type(result).__name__}, "
                             "not a Spark DataFrame")
        result.write.mode("overwrite").parquet(str(out))
        frame = pl.read_parquet(out / "*.parquet").sort("account_id")
    except AuditError:
        raise
    except Exception as exc:
        raise AuditError(f"algorithm {label} failed on Spark: {type(exc).__name__}: {_first_line(exc)}") from exc
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return frame, describe(spark, options)

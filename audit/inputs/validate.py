"""Validate a parsed batch with great-expectations before anything is stored.

great-expectations is imported lazily (it takes seconds): only commands that validate pay
for it. The result kept with the batch is plain sorted JSON with no run ids or clock.
"""
from __future__ import annotations

import gc
import os
import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from ..errors import ValidationError
from ..store.schema import KINDS
from .formats import (
    ACCOUNT_COLUMNS,
    INTERACTION_COLUMNS,
    OPTIONAL_ACCOUNT,
    OPTIONAL_INTERACTION,
    Parsed,
)

EXAMPLES = 5
COLLECT_BYTES = 64 << 20    # a checked frame this big is collected as soon as it is validated
TOPIC_MAX = 100         # characters in one topic name
TOPIC_SEP = "|"         # a row's topics are separated by it: each event counts once in each


def _topic_ok() -> pl.Expr:
    """True where `topic` is absent or one or more names separated by TOPIC_SEP, each of 1 to
    TOPIC_MAX characters and without control characters."""
    name = pl.element()
    good = ((name.str.len_chars() > 0) & (name.str.len_chars() <= TOPIC_MAX)
            & ~name.str.contains(r"[\x00-\x1f\x7f-\x9f]"))
    return pl.col("topic").is_null() | pl.col("topic").str.split(TOPIC_SEP).list.eval(good).list.all()


@dataclass(frozen=True)
class Check:
    """One expectation, described the way the message and the report name it."""
    expectation: str
    column: str
    describe: str
    show: tuple[str, ...]       # raw columns to show for a failing row
    kwargs: dict[str, Any]


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")   # never phone home
    # great-expectations imports pyspark when it is installed (the spark extra), and pyspark warns
    # about the pandas version on import: nothing a user of `ingest` can act on
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    import great_expectations as gx
    return gx


def _checks(parsed: Parsed, now: datetime) -> tuple[pl.DataFrame, list[Check]]:
    """The frame handed to great-expectations and the expectations to run on it."""
    df = parsed.frame
    now_epoch = now.timestamp()
    if parsed.batch_kind == "interactions":
        # Ids are handed over as their byte length (null where missing or empty): the presence
        # checks need nothing else, and 10M ids need not become Python strings for pandas.
        # kind has a handful of values: a categorical keeps its text for the vocabulary check.
        frame = df.select(
            "_line",
            *[pl.when(pl.col(c).str.len_bytes() > 0).then(pl.col(c).str.len_bytes()).alias(c)
              for c in ("source", "target")],
            pl.when(pl.col("kind").str.len_bytes() > 0).then(pl.col("kind")).cast(pl.Categorical).alias("kind"),
            (pl.col("ts").dt.epoch("us") / 1e6).alias("ts_epoch"),
            pl.col("weight").is_finite().fill_null(False).alias("weight_finite"),
            "event_id",
            _topic_ok().alias("topic_ok"),
        )
        checks = [Check("expect_column_values_to_not_be_null", c, f"{c} is present", (c,), {})
                  for c in ("source", "target", "kind")]
        checks += [
            Check("expect_column_values_to_be_in_set", "kind", f"kind is one of {', '.join(KINDS)}",
                  ("kind",), {"value_set": list(KINDS)}),
            Check("expect_column_values_to_not_be_null", "ts_epoch",
                  "ts is a UTC timestamp (ISO 8601 or epoch seconds)", ("ts_text",), {}),
            Check("expect_column_values_to_be_between", "ts_epoch",
                  f"ts is not after the ingest time {now.isoformat()}", ("ts_text",), {"max_value": now_epoch}),
            Check("expect_column_values_to_be_in_set", "weight_finite", "weight is a finite number",
                  ("weight_text",), {"value_set": [True]}),
        ]
        if df["topic"].null_count() < df.height:
            checks.append(Check("expect_column_values_to_be_in_set", "topic_ok",
                                f"topic is one or more names separated by {TOPIC_SEP}, each of 1 to {TOPIC_MAX} "
                                "characters without control characters", ("topic",), {"value_set": [True]}))
        if df["event_id"].null_count() < df.height:
            checks.append(Check("expect_column_values_to_be_unique", "event_id", "event_id is unique",
                                ("event_id",), {}))
    else:
        frame = df.select(
            "_line", pl.when(pl.col("account_id").str.len_chars() > 0).then(pl.col("account_id")).alias("account_id"),
            (pl.col("created_at_text").is_null() | pl.col("created_at").is_not_null()).alias("created_ok"),
            (pl.col("created_at").dt.epoch("us") / 1e6).alias("created_epoch"),
            (pl.col("followers_text").is_null() | pl.col("followers").is_not_null()).alias("followers_ok"),
            (pl.col("following_text").is_null() | pl.col("following").is_not_null()).alias("following_ok"),
        )
        checks = [
            Check("expect_column_values_to_not_be_null", "account_id", "account_id is present", ("account_id",), {}),
            Check("expect_column_values_to_be_unique", "account_id", "account_id is unique in the file",
                  ("account_id",), {}),
            Check("expect_column_values_to_be_in_set", "created_ok", "created_at is a UTC timestamp",
                  ("created_at_text",), {"value_set": [True]}),
            Check("expect_column_values_to_be_between", "created_epoch",
                  f"created_at is not after the ingest time {now.isoformat()}", ("created_at_text",),
                  {"max_value": now_epoch}),
            Check("expect_column_values_to_be_in_set", "followers_ok", "followers is an integer",
                  ("followers_text",), {"value_set": [True]}),
            Check("expect_column_values_to_be_in_set", "following_ok", "following is an integer",
                  ("following_text",), {"value_set": [True]}),
        ]
    return frame, checks


def _run_gx(frame: pl.DataFrame, checks: list[Check]) -> list[dict[str, Any]]:
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("input").add_dataframe_asset("batch")
    checked = frame.drop("_line")
    copied = checked.estimated_size()
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
        batch_parameters={"dataframe": checked.to_pandas()})
    suite = gx.ExpectationSuite(name="batch")
    for check in checks:
        cls = getattr(gx.expectations, "".join(p.title() for p in check.expectation.split("_")))
        suite.add_expectation(cls(column=check.column, **check.kwargs))
    result = batch.validate(suite, result_format={"result_format": "COMPLETE",
                                                  "partial_unexpected_count": EXAMPLES})
    by_key = {(r.expectation_config.type, r.expectation_config.kwargs["column"]): r for r in result.results}
    out = []
    for check in checks:
        r = by_key[(check.expectation, check.column)]
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"great-expectations failed on {check.expectation}: "
                               f"{r.exception_info.get('exception_message')}")
        idx = sorted(r.result.get("unexpected_index_list") or [])
        out.append({"expectation": check.expectation, "column": check.column, "describe": check.describe,
                    "success": bool(r.success), "unexpected": int(r.result.get("unexpected_count") or 0),
                    "index": idx[:EXAMPLES]})
    # The context keeps its batch (a pandas copy of the checked columns) alive: drop it now,
    # not when the process ends, since the next steps need that memory. A full collection walks
    # every object great-expectations made on import (~0.2 s): worth it only for a big copy.
    context.data_sources.delete("input")
    del batch, asset, context, result, by_key
    if copied >= COLLECT_BYTES:
        gc.collect()
    return out


def _examples(parsed: Parsed, index: list[int], show: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = parsed.frame[index].select(["_line", *show])
    return [{"line": r["_line"], **{c: r[c] for c in show}} for r in rows.iter_rows(named=True)]


def _fmt_example(ex: dict[str, Any]) -> str:
    # `ts_text` is the raw text of the file's `ts` column: name the column as the file does.
    return f"line {ex['line']}: " + ", ".join(f"{k.removesuffix('_text')}={v!r}"
                                             for k, v in ex.items() if k != "line")


def validate(parsed: Parsed, now: datetime) -> dict[str, Any]:
    """Run every expectation; return the result to store, or raise ValidationError naming the failures."""
    path = parsed.path
    if parsed.missing:
        present = ", ".join(c for c in parsed.frame.columns if not c.startswith("_"))
        raise ValidationError(
            f"{path}: rejected, nothing was stored: required column(s) {', '.join(parsed.missing)} missing "
            f"(expect_column_to_exist); the file has: {present}. "
            f"{'Interactions need source, target, kind, ts' if parsed.batch_kind == 'interactions' else 'Accounts need account_id'}")
    frame, checks = _checks(parsed, now)
    outcome = _run_gx(frame, checks)
    failed = []
    for check, res in zip(checks, outcome):
        res["examples"] = _examples(parsed, res.pop("index"), check.show)
        if not res["success"]:
            show = "; ".join(_fmt_example(e) for e in res["examples"])
            failed.append(f"  {check.expectation} on column {check.show[0].removesuffix('_text')} ({check.describe}): "
                          f"{res['unexpected']:,} of {parsed.frame.height:,} rows fail, e.g. {show}")
    if failed:
        raise ValidationError(f"{path}: rejected, nothing was stored:\n" + "\n".join(failed))
    # Identical as stored: columns the store does not keep (extra columns of a CSV) do not count.
    key = [*INTERACTION_COLUMNS, *OPTIONAL_INTERACTION] if parsed.batch_kind == "interactions" \
        else [*ACCOUNT_COLUMNS, *OPTIONAL_ACCOUNT]
    # A 64-bit row hash finds the candidates cheaply (identical rows hash alike); the exact
    # comparison then runs on those few rows only, not on a struct of all 10M.
    candidates = parsed.frame.select(key).hash_rows().is_duplicated()
    dup = (parsed.frame.filter(candidates)
           .select("_line", pl.struct(key).is_first_distinct().not_().alias("dup")).filter("dup"))
    warnings = []
    if dup.height:
        warnings.append({"code": "identical_rows", "count": dup.height,
                         "text": f"{dup.height:,} rows repeat an earlier row of this file exactly; kept as delivered",
                         "example_lines": dup["_line"].head(EXAMPLES).to_list()})
    result = {"rows": parsed.frame.height, "expectations": outcome, "warnings": warnings,
              "validator": f"great_expectations {_gx().__version__}"}
    if parsed.batch_kind == "interactions" and parsed.frame["topic"].null_count() < parsed.frame.height:
        # the batch's topics, kept with it (each row counts once in each of its topics)
        names = parsed.frame["topic"].drop_nulls().str.split(TOPIC_SEP).list.unique().explode()
        result["topics"] = {"rows": parsed.frame.height - parsed.frame["topic"].null_count(),
                            "distinct": names.n_unique(), "assignments": len(names)}
    return result



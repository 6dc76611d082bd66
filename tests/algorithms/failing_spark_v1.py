"""A user algorithm whose Spark implementation fails inside a Spark job (the tests' failing
compute_spark): its local score() is indegree@1's."""
import numpy as np
import polars as pl

NAME = "failingspark"
VERSION = 1
DESCRIPTION = "Interactions received, log-scaled; its Spark implementation fails on purpose."
CHANGELOG = "First version."
PARAMS = {"scale": 99.0}
COMPONENTS = {"received": "Interactions received (log)"}


def score(interactions, accounts, params):
    ids = pl.concat([interactions.select(pl.col("source").alias("account_id")),
                     interactions.select(pl.col("target").alias("account_id")),
                     accounts.select("account_id")]).unique()
    received = interactions.group_by("target").agg(pl.len().alias("n")).rename({"target": "account_id"})
    out = (ids.join(received, on="account_id", how="left")
           .with_columns(pl.col("n").fill_null(0).cast(pl.Float64).log1p().alias("received"))
           .with_columns(pl.col("received").alias("raw")).sort("account_id"))
    top = float(out["raw"].max() or 0.0) or 1.0
    out = out.with_columns(pl.Series("score", np.clip(1.0 + params["scale"] * out["raw"].to_numpy() / top, 1, 100)))
    return out.select("account_id", "raw", "score", "received")


def compute_spark(spark, interactions, accounts, params):
    from pyspark.sql import functions as F
    # a job that fails on the executors: what a bug in a Spark implementation looks like
    interactions.select(F.assert_true(F.col("source") == "nobody", "no such account")).collect()
    raise AssertionError("unreachable")

"""indegree@1: a user algorithm, the smallest that meets the contract (README, "Algorithm contract").

raw = log(1 + interactions received); score maps raw onto 1..100 against the population's maximum.
"""
import numpy as np
import polars as pl

NAME = "indegree"
VERSION = 1
DESCRIPTION = "Interactions received, log-scaled, relative to the most engaged account."
CHANGELOG = "First version."
PARAMS = {"scale": 99.0}
COMPONENTS = {"received": "Interactions received (log)"}
REASONS = {"RECEIVED_FELL": "Interactions received fell from {before:,.0f} to {after:,.0f}: {points:+.1f} points"}


def normalisation(result, params):
    return {"max": float(result["raw"].max() or 0.0)}


def to_score(raw, norm, params):
    top = norm["max"] or 1.0
    return np.clip(1.0 + params["scale"] * raw / top, 1.0, 100.0)


def score(interactions, accounts, params):
    ids = pl.concat([interactions.select(pl.col("source").alias("account_id")),
                     interactions.select(pl.col("target").alias("account_id")),
                     accounts.select("account_id")]).unique()
    received = interactions.group_by("target").agg(pl.len().alias("n")).rename({"target": "account_id"})
    out = (ids.join(received, on="account_id", how="left")
           .with_columns(pl.col("n").fill_null(0).cast(pl.Float64).log1p().alias("received"))
           .with_columns(pl.col("received").alias("raw")).sort("account_id"))
    out = out.with_columns(pl.Series("score", to_score(out["raw"].to_numpy(), normalisation(out, params), params)))
    return out.select("account_id", "raw", "score", "received")

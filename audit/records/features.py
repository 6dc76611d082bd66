"""Derived features: per-account facts of a snapshot that compare, segments and explain read,
computed once from the snapshot's interactions and accounts and stored as a logged record
(schema migration 9), so that they are not read again from every interaction of the snapshot.

A features record is named by its snapshot's content hash and the recipe (FEATURES_RECIPE): one
snapshot has one. Its rows enter its content hash through their digest; `verify` checks the
stored rows against it and `verify --rerun` computes them again from the snapshot.

Two tables: account_feature (one row per account: the segment features and the interactions it
gave to other accounts) and account_out (what each account gave to others, by kind and sign of
the weight: count and weights added up), from which an explanation rebuilds any version's engager
out-weights without reading the engagers' interactions.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import polars as pl

from ..store.db import append_log, dicts, frame, registered
from ..store.hashing import as_utc
from ..store.recipes import (
    FEATURES_RECIPE,
    features_digest,
    features_hash,
    features_id_for,
    logged,
)
from .snapshots import Snapshot, accounts_sql, selection

SEGMENT_COLUMNS = ("account_id", "received", "given", "distinct_engagers", "followers", "age_days")
ACCOUNT_COLUMNS = (*SEGMENT_COLUMNS, "given_others")
OUT_COLUMNS = ("account_id", "kind", "negative", "n", "weight")
# Interactions rebuilt from account_out stand for "everything else this engager gave": their target
# is this id, which no account has (ids are never empty).
ELSEWHERE = ""


def compute(con: duckdb.DuckDBPyConnection, snap: Snapshot) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The feature rows of a snapshot from its interactions and accounts: (account_feature rows in
    account order, account_out rows in (account, kind, sign) order). The sums do not depend on how
    a parallel scan split the rows: whole numbers add up exactly in any order, and a group holding
    another weight is added in order of its values."""
    rows, params = selection(snap)
    accounts = frame(con, f"""
        WITH w AS (SELECT source, target, ts FROM ({rows})),
        received AS (SELECT target AS account_id, count(*) AS received, count(DISTINCT source) AS distinct_engagers
                     FROM w GROUP BY target),
        given AS (SELECT source AS account_id, count(*) AS given, count(*) FILTER (WHERE source <> target) AS others
                  FROM w GROUP BY source),
        acc AS ({accounts_sql(snap.accounts_rule)}),
        ids AS (SELECT account_id FROM received UNION SELECT account_id FROM given UNION SELECT account_id FROM acc),
        latest AS (SELECT max(ts) AS ts FROM w)
        SELECT ids.account_id, coalesce(r.received, 0)::BIGINT AS received, coalesce(g.given, 0)::BIGINT AS given,
               coalesce(r.distinct_engagers, 0)::BIGINT AS distinct_engagers, acc.followers::BIGINT AS followers,
               (epoch_us((SELECT ts FROM latest)) - epoch_us(acc.created_at)) / 86400000000.0 AS age_days,
               coalesce(g.others, 0)::BIGINT AS given_others
        FROM ids LEFT JOIN received r USING (account_id) LEFT JOIN given g USING (account_id)
        LEFT JOIN acc USING (account_id)
        ORDER BY ids.account_id""", params)
    # A sum of whole numbers is exact in any order; a group with another weight is added again in
    # order of its values (an ordered sum costs a sort, so only where it is needed).
    out = frame(con, f"""
        SELECT source AS account_id, kind::VARCHAR AS kind, weight < 0 AS negative, count(*)::BIGINT AS n,
               sum(weight) AS weight, bool_and(weight = trunc(weight) AND abs(weight) < 2e9) AS whole
        FROM ({rows}) WHERE source <> target
        GROUP BY ALL ORDER BY account_id, kind, negative""", params)
    if not out["whole"].all():
        params = params | {"fractional": out.filter(~pl.col("whole"))["account_id"].unique().sort().to_list()}
        ordered = frame(con, f"""
            SELECT source AS account_id, kind::VARCHAR AS kind, weight < 0 AS negative,
                   sum(weight ORDER BY weight) AS ordered
            FROM ({rows}) WHERE source <> target AND source IN (SELECT unnest($fractional))
            GROUP BY ALL""", params)
        out = (out.join(ordered, on=["account_id", "kind", "negative"], how="left", maintain_order="left")
               .with_columns(pl.when(pl.col("whole")).then(pl.col("weight")).otherwise(pl.col("ordered"))
                             .alias("weight")))
    return accounts.select(ACCOUNT_COLUMNS), out.select(OUT_COLUMNS)


def _snapshot_hash(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> str:
    return dicts(con, "SELECT content_hash FROM snapshot WHERE snapshot_id = ?", [snapshot_id])[0]["content_hash"]


def find(con: duckdb.DuckDBPyConnection, snapshot_id: str) -> str | None:
    """The id of the snapshot's stored features, or None when they are not stored (yet)."""
    rows = dicts(con, "SELECT features_id FROM features WHERE snapshot_id = ? AND recipe = ?",
                 [snapshot_id, FEATURES_RECIPE])
    return rows[0]["features_id"] if rows else None


def ensure(con: duckdb.DuckDBPyConnection, snap: Snapshot, now: datetime) -> tuple[str, bool]:
    """The snapshot's features id, computing and storing them (one record, logged) when they are not
    stored yet; (id, whether they were stored now). Call inside the command's transaction."""
    features_id = features_id_for(_snapshot_hash(con, snap.snapshot_id), FEATURES_RECIPE)
    if dicts(con, "SELECT count(*) AS n FROM features WHERE features_id = ?", [features_id])[0]["n"]:
        return features_id, False
    now = as_utc(now)
    accounts, out = compute(con, snap)
    digest = features_digest(accounts, out)
    content = features_hash(features_id, snap.snapshot_id, FEATURES_RECIPE, accounts.height, out.height, digest)
    con.execute("INSERT INTO features VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [features_id, content, snap.snapshot_id, FEATURES_RECIPE, accounts.height, out.height, digest, now])
    with registered(con, "new_account_feature", accounts), registered(con, "new_account_out", out):
        con.execute(f"INSERT INTO account_feature SELECT ?, {', '.join(ACCOUNT_COLUMNS)} FROM new_account_feature "
                    "ORDER BY account_id", [features_id])
        con.execute("INSERT INTO account_out SELECT ?, account_id, kind::interaction_kind, negative, n, weight "
                    "FROM new_account_out ORDER BY account_id, kind, negative", [features_id])
    append_log(con, "features", features_id, logged(content, created_at=now), now)
    return features_id, True


def stored(con: duckdb.DuckDBPyConnection, features_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The stored rows of a features record, in the order their digest covers."""
    accounts = frame(con, f"SELECT {', '.join(ACCOUNT_COLUMNS)} FROM account_feature WHERE features_id = ? "
                          "ORDER BY account_id", [features_id])
    out = frame(con, "SELECT account_id, kind::VARCHAR AS kind, negative, n, weight FROM account_out "
                     "WHERE features_id = ? ORDER BY account_id, kind, negative", [features_id])
    return accounts, out


def segment_features(con: duckdb.DuckDBPyConnection, snap: Snapshot) -> pl.DataFrame:
    """The snapshot's per-account segment features (segments.FEATURE_SCHEMA's columns, in account
    order): read from its stored features when they are stored, else computed from its interactions."""
    from .snapshots import features as computed
    features_id = find(con, snap.snapshot_id)
    if features_id is None:
        return computed(con, snap)
    return frame(con, f"SELECT {', '.join(SEGMENT_COLUMNS)} FROM account_feature WHERE features_id = ? "
                      "ORDER BY account_id", [features_id])


def received_by(con: duckdb.DuckDBPyConnection, snapshots: list[Snapshot], account: str) -> dict[str, pl.DataFrame]:
    """The interactions into ACCOUNT in each snapshot (source, target, kind, ts, weight), by snapshot
    id: ordinary snapshots of the same batches (an explanation's two sides, usually) in one scan."""
    def one(snap: Snapshot) -> pl.DataFrame:
        rows, params = selection(snap)
        return frame(con, f"SELECT source, target, kind::VARCHAR AS kind, ts, weight FROM ({rows}) "
                          "WHERE target = $account", params | {"account": account})
    if len(snapshots) < 2 or any(s.parent_id is not None for s in snapshots) or len(
            {s.batch_ids for s in snapshots}) > 1:
        found = {s.snapshot_id: one(s) for s in snapshots}
    else:
        lowers = [None if s.window_seconds is None else s.as_of - timedelta(seconds=s.window_seconds)
                  for s in snapshots]
        lower = None if None in lowers else min(lowers)
        params = {"batches": list(snapshots[0].batch_ids), "account": account,
                  "upper": max(s.as_of for s in snapshots)} | ({} if lower is None else {"lower": lower})
        both = frame(con, "SELECT source, target, kind::VARCHAR AS kind, ts, weight FROM interaction "
                          "WHERE batch_id IN (SELECT unnest($batches)) AND target = $account AND ts < $upper"
                          + ("" if lower is None else " AND ts >= $lower"), params)
        found = {}
        for s, low in zip(snapshots, lowers):
            inside = pl.col("ts") < s.as_of
            found[s.snapshot_id] = both.filter(inside if low is None else inside & (pl.col("ts") >= low))
    return {k: v.cast({"ts": pl.Datetime("us", "UTC")}) for k, v in found.items()}


def account_inputs(con: duckdb.DuckDBPyConnection, snap: Snapshot, features_id: str,
                   account: str, received: pl.DataFrame | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """What an explanation of ACCOUNT needs from the snapshot, from its stored features: (the
    interactions into the account and, for each engager, what else it gave, one row per kind and
    sign of the weight, with the weights added up and the target ELSEWHERE; each engager's count
    of interactions given to other accounts). A version's engager out-weight that adds up
    kind_weight * max(weight, 0), * weight or * |weight| over an engager's interactions is the same
    over these rows, exactly when the weights' sums are exact (counts, whole rating points)."""
    if received is None:
        received = received_by(con, [snap], account)[snap.snapshot_id]
    engagers = pl.DataFrame({"account_id": received.filter(pl.col("source") != account)["source"].unique().sort()},
                            schema={"account_id": pl.String})
    with registered(con, "explained_engagers", engagers):
        out = frame(con, "SELECT o.account_id AS source, o.kind::VARCHAR AS kind, o.negative, o.n, o.weight "
                         "FROM account_out o JOIN explained_engagers e USING (account_id) WHERE o.features_id = ? "
                         "ORDER BY source, kind, negative", [features_id])
        given = frame(con, "SELECT f.account_id AS engager, f.given_others AS given FROM account_feature f "
                           "JOIN explained_engagers e USING (account_id) WHERE f.features_id = ? ORDER BY engager",
                      [features_id])
    keys = ["source", "kind", "negative"]
    # what each engager gave the account, by kind and sign (added in order of the weights)
    mine = (received.filter(pl.col("source") != account).with_columns((pl.col("weight") < 0).alias("negative"))
            .sort([*keys, "weight"]).group_by(keys, maintain_order=True)
            .agg(pl.len().cast(pl.Int64).alias("n_mine"), pl.col("weight").sum().alias("weight_mine")))
    elsewhere = (out.cast({"n": pl.Int64, "weight": pl.Float64}).join(mine, on=keys, how="left")
                 .with_columns(pl.col("n_mine").fill_null(0), pl.col("weight_mine").fill_null(0.0))
                 .filter(pl.col("n") > pl.col("n_mine"))
                 .select("source", pl.lit(ELSEWHERE).alias("target"), "kind",
                         pl.lit(snap.as_of).cast(pl.Datetime("us", "UTC")).alias("ts"),
                         (pl.col("weight") - pl.col("weight_mine")).alias("weight")))
    inputs = pl.concat([received, elsewhere]).sort(["ts", "source", "target", "kind", "weight"])
    return inputs, given.cast({"given": pl.Int64})


def list_all(con: duckdb.DuckDBPyConnection) -> list[dict]:
    return dicts(con, "SELECT features_id, snapshot_id, recipe, accounts, out_rows, rows_hash, created_at, "
                      "content_hash FROM features ORDER BY created_at, features_id")


def _find(con: duckdb.DuckDBPyConnection, features_id: str) -> dict | None:
    rows = dicts(con, "SELECT features_id, snapshot_id, recipe, accounts, out_rows, rows_hash, created_at, "
                      "content_hash FROM features WHERE features_id = ?", [features_id])
    return rows[0] if rows else None


def recompute(con: duckdb.DuckDBPyConnection, features_id: str) -> str | None:
    """The logged content of a features record from what the store holds, or what disagrees: its
    id must be its snapshot's, its rows must be the ones its digest and counts cover."""
    r = _find(con, features_id)
    if r is None:
        return None
    found = dicts(con, "SELECT content_hash FROM snapshot WHERE snapshot_id = ?", [r["snapshot_id"]])
    if not found:
        return f"its snapshot {r['snapshot_id']} is missing"
    if features_id_for(found[0]["content_hash"], r["recipe"]) != features_id:
        return f"its id is not the one of snapshot {r['snapshot_id']} and recipe {r['recipe']}"
    accounts, out = stored(con, features_id)
    digest = features_digest(accounts, out)
    if (accounts.height, out.height, digest) != (r["accounts"], r["out_rows"], r["rows_hash"]):
        return f"the stored rows of account_feature/account_out disagree with the digest of {features_id}"
    content = features_hash(features_id, r["snapshot_id"], r["recipe"], r["accounts"], r["out_rows"], digest)
    if content != r["content_hash"]:
        return f"stored content_hash disagrees with the fields of {features_id}"
    return logged(content, created_at=r["created_at"])


def rerun(con: duckdb.DuckDBPyConnection, step=None) -> tuple[list[dict], int]:
    """Compute every stored features record again from its snapshot; the rows must be the stored ones."""
    from .snapshots import find as find_snapshot
    problems = []
    every = list_all(con)
    for r in every:
        if step is not None:
            step(f"recomputing features {r['features_id']}")
        where = {"seq": None, "kind": "features", "record_id": r["features_id"]}
        snap = find_snapshot(con, r["snapshot_id"])
        if snap is None or r["recipe"] != FEATURES_RECIPE:
            problems.append({**where, "problem": f"its snapshot {r['snapshot_id']} is missing or its recipe "
                                                 f"{r['recipe']} is not known"})
            continue
        fresh = features_digest(*compute(con, snap))
        if fresh != r["rows_hash"]:
            problems.append({**where, "problem": f"recomputing the features of {r['snapshot_id']} gives rows "
                                                 f"{fresh[:16]}, stored {r['rows_hash'][:16]}"})
    return problems, len(every)

"""Bare, provenance-free versions of each step, timed in the same run as audit's.

No hashing, no log, no validation beyond what the step needs to be correct: these are what a
competent engineer would write without an audit trail, so ratios against them price the
audit trail. Each one does the same work as the audited step it is compared with.
"""
from __future__ import annotations

import time
from pathlib import Path

import duckdb
import networkx as nx
import numpy as np
import polars as pl
import scipy.sparse as sp

KIND_WEIGHTS = {"retweet": 1.0, "reply": 0.75, "mention": 0.5}
DAMPING = 0.85
TOL = 1e-13        # L1 change between iterates, as network@2 stops
MAX_ITER = 500


def bare_read_csv(path: str | Path, db_path: str | Path = ":memory:", **options: str | bool) -> int:
    """DuckDB read_csv of PATH into a table (no validation); the row count.

    OPTIONS go to read_csv as they are, e.g. header=False, delim=" " for the Higgs file.
    """
    args = "".join(f", {k} = {_quote(v) if isinstance(v, str) else str(v).lower()}" for k, v in options.items())
    with duckdb.connect(str(db_path)) as con:
        con.execute(f"CREATE TABLE interactions AS SELECT * FROM read_csv({_quote(path)}{args})")
        rows = con.execute("SELECT count(*) FROM interactions").fetchall()[0][0]
        con.execute("CHECKPOINT")
    return rows


def bare_groupby(interactions: pl.DataFrame) -> pl.DataFrame:
    """What an activity score needs: received count per kind and distinct engagers per target."""
    kind = pl.col("kind")
    return interactions.group_by("target").agg(
        retweets=(kind == "retweet").sum(),
        mentions=(kind == "mention").sum(),
        replies=(kind == "reply").sum(),
        engagers=pl.col("source").n_unique(),
    )


def dense_ids(interactions: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, pl.Series]:
    """Source and target ids as ints in [0, n), and the n id strings in code order.

    Strings are mapped through a 64-bit hash: one collision among a million ids has
    probability ~3e-8, which a baseline can accept (an audited score could not).
    """
    names = pl.concat([interactions["source"], interactions["target"]])
    h = pl.DataFrame({"h": names.hash()})
    code = h.unique().with_row_index("i")
    idx = h.join(code, on="h", how="left", maintain_order="left")["i"].to_numpy()
    where = np.empty(code.height, dtype=np.int64)
    where[idx] = np.arange(idx.size)  # any row holding a code names it
    m = interactions.height
    return idx[:m], idx[m:], names.gather(where)


def transition_matrix(interactions: pl.DataFrame) -> tuple[sp.csr_array, np.ndarray, pl.Series]:
    """P (CSR, author x engager, columns summing to 1), the dangling mask and the ids.

    Kind weights as in network@2; self-loops dropped; repeated edges summed.
    """
    src, dst, ids = dense_ids(interactions)
    n = ids.len()
    w = interactions["kind"].replace_strict(KIND_WEIGHTS, default=0.0, return_dtype=pl.Float64).to_numpy()
    keep = (src != dst) & (w > 0)
    src, dst, w = src[keep], dst[keep], w[keep]
    out = np.bincount(src, weights=w, minlength=n)
    p = sp.csr_array((w / out[src], (dst, src)), shape=(n, n))
    return p, out == 0, ids


def csr_power_iteration(p: sp.csr_array, dangling: np.ndarray, damping: float = DAMPING,
                        tol: float = TOL, max_iter: int = MAX_ITER) -> tuple[np.ndarray, int]:
    """Plain PageRank power iteration, dangling mass spread uniformly; (vector, iterations)."""
    n = p.shape[0]
    x = np.full(n, 1.0 / n)
    for i in range(1, max_iter + 1):
        new = damping * (p @ x) + (damping * x[dangling].sum() + 1.0 - damping) / n
        err = np.abs(new - x).sum()
        x = new
        if err < tol:
            return x, i
    return x, max_iter


def networkx_pagerank_sample(interactions: pl.DataFrame, n_edges: int = 100_000,
                             damping: float = DAMPING) -> dict:
    """networkx.pagerank on the first N_EDGES interactions, graph building included."""
    sample = interactions.head(n_edges)
    t = time.perf_counter()
    edges = (sample.filter(pl.col("source") != pl.col("target"))
             .with_columns(w=pl.col("kind").replace_strict(KIND_WEIGHTS, default=0.0, return_dtype=pl.Float64))
             .group_by("source", "target").agg(pl.col("w").sum()))
    g = nx.DiGraph()
    g.add_weighted_edges_from(edges.iter_rows())
    built = time.perf_counter() - t
    # networkx's own default tolerance (N * 1e-6, L1) is far looser than TOL at this size.
    nx.pagerank(g, alpha=damping, tol=TOL / max(g.number_of_nodes(), 1), max_iter=MAX_ITER)
    seconds = time.perf_counter() - t
    return {"interactions": sample.height, "edges": g.number_of_edges(), "nodes": g.number_of_nodes(),
            "seconds": seconds, "build_seconds": built, "per_interaction": seconds / max(sample.height, 1)}


def bare_pipeline(path: str | Path, store_path: str | Path) -> dict:
    """Read the CSV with DuckDB, check nulls and kinds in SQL, PageRank, store the scores."""
    with duckdb.connect(str(store_path)) as con:
        con.execute(f"CREATE TABLE interactions AS SELECT * FROM read_csv({_quote(path)})")
        kinds = ", ".join(_quote(k) for k in KIND_WEIGHTS)
        bad = con.execute(
            "SELECT count(*) FILTER (WHERE source IS NULL OR target IS NULL OR kind IS NULL OR ts IS NULL),"
            f" count(*) FILTER (WHERE kind NOT IN ({kinds})), count(*) FROM interactions").fetchall()[0]
        if bad[0] or bad[1]:
            raise ValueError(f"{bad[0]} rows with nulls, {bad[1]} with an unknown kind in {path}")
        frame = con.sql("SELECT source, target, kind FROM interactions").pl()
        p, dangling, ids = transition_matrix(frame)
        del frame
        rank, iterations = csr_power_iteration(p, dangling)
        scores = pl.DataFrame({"account_id": ids, "pagerank": rank})  # noqa: F841 (read by SQL)
        con.execute("CREATE TABLE scores AS SELECT * FROM scores ORDER BY account_id")
        con.execute("CHECKPOINT")
    return {"rows": bad[2], "accounts": ids.len(), "iterations": iterations}


def _quote(value: str | Path) -> str:
    return "'" + str(value).replace("'", "''") + "'"

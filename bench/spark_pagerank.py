"""The bare PySpark PageRank the Spark engine is measured against: the same update as network@3 (the
same kind weights, damping, uniform teleport, dangling mass spread evenly, L1 change computed each
iteration) by iterated DataFrame joins on the same 64-bit keys, the same partitioning and the same
lineage cut, with plain floating-point sums and no provenance: no export check, no exact sums, no
components, no output contract, no store."""
from __future__ import annotations

import time
from pathlib import Path

DAMPING = 0.85
KIND_WEIGHTS = {"retweet": 1.0, "reply": 0.75, "mention": 0.5, "like": 0.25, "message": 0.25, "follow": 0.1,
                "rating": 0.1}


def bare_pagerank(spark, folder: str, iterations: int, out: str) -> dict:
    """Read FOLDER/interactions.parquet, run ITERATIONS PageRank iterations, write the ranks to OUT;
    seconds in all, to prepare, per iteration and to write."""
    from pyspark.sql import functions as F
    col, lit, d = F.col, F.lit, DAMPING
    parts = int(spark.conf.get("spark.sql.shuffle.partitions"))
    t0 = time.perf_counter()
    i = spark.read.parquet(str(Path(folder) / "interactions.parquet"))
    weight = lit(0.0)
    for kind, w in KIND_WEIGHTS.items():
        weight = F.when(col("kind") == kind, lit(w)).otherwise(weight)
    edges = (i.select(F.xxhash64("source").alias("src"), F.xxhash64("target").alias("tgt"),
                      (weight * F.greatest(col("weight"), lit(0.0))).alias("w"))
             .where((col("w") > 0) & (col("src") != col("tgt")))
             .groupBy("src", "tgt").agg(F.sum("w").alias("w")))
    out_w = edges.groupBy("src").agg(F.sum("w").alias("out"))
    edges = (edges.join(out_w, "src").select("src", "tgt", (col("w") / col("out")).alias("p"))
             .repartition(parts, "src").persist())
    edges.count()
    ids = (i.select(F.xxhash64("source").alias("id")).union(i.select(F.xxhash64("target").alias("id"))).distinct())
    nodes = ids.join(out_w, ids["id"] == out_w["src"], "left").select("id", col("out").isNull().alias("dangling"))
    n = nodes.count()
    ranks = (nodes.select("id", "dangling", lit(1.0 / n).alias("x")).repartition(parts, "id")
             .localCheckpoint(eager=True))
    dangling = ranks.where(col("dangling")).agg(F.sum("x")).first()[0] or 0.0
    prepare = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(iterations):
        base = (1.0 - d) / n + d * dangling / n
        contribs = (edges.join(ranks.select(col("id").alias("src"), "x"), "src")
                    .groupBy("tgt").agg(F.sum(col("x") * col("p")).alias("c")))
        nxt = (ranks.join(contribs, ranks["id"] == contribs["tgt"], "left")
               .select("id", "dangling", col("x").alias("old"),
                       (lit(d) * F.coalesce(col("c"), lit(0.0)) + lit(base)).alias("x"))
               .localCheckpoint(eager=False))
        row = nxt.agg(F.sum(F.abs(col("x") - col("old"))).alias("err"),
                      F.sum(F.when(col("dangling"), col("x")).otherwise(0.0)).alias("dangling")).first()
        ranks, dangling = nxt, row["dangling"]
    loop = time.perf_counter() - t1
    t2 = time.perf_counter()
    ranks.select("id", "x").write.mode("overwrite").parquet(out)
    write = time.perf_counter() - t2
    return {"seconds": time.perf_counter() - t0, "prepare": prepare, "per_iteration": loop / max(iterations, 1),
            "write": write, "iterations": iterations, "accounts": n}

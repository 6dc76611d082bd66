"""Compare two runs (baseline vs candidate): pure functions over polars frames and numpy arrays.

Invariant: the result depends only on the inputs; no I/O, no clock, no randomness, and every
ordering is total (score descending, then account_id ascending), so the same two runs always
give the same Comparison. Conventions used throughout:
- delta = candidate score - baseline score over accounts in both runs, rounded to 9 decimals
  before any statistic so that polars, numpy and DuckDB agree on near-ties;
- percentiles are nearest-rank: P_q = the ceil(q*m/100)-th smallest rounded delta (1-based,
  integer arithmetic); the median is the usual one (mean of the two middle values when m is even);
- a ranking orders accounts by score descending, ties broken by account_id ascending;
- rank (movers) = 1 + number of accounts in that run with a strictly higher score;
- score band k (0..9) = min(floor(score / 10), 9): 1-10, 10-20, ..., 90-100 (lower bound
  inclusive, upper exclusive, except that 100 falls in the last band).
"""
from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from . import segments as seg

try:  # scipy's compiled Fenwick count: ~20x faster than the numpy fallback below
    from scipy.stats._stats import _kendall_dis
except ImportError:  # pragma: no cover - only when scipy moves its internals
    _kendall_dis = None

BAND_LABELS: tuple[str, ...] = tuple(f"{max(10 * k, 1)}-{10 * k + 10}" for k in range(10))
RBO_P: tuple[float, ...] = (0.9, 0.99)
TOP_K: tuple[int, ...] = (10, 100, 1000)
SCOPES: tuple[tuple[str, int], ...] = (("all", 1), ("top_10pct", 10), ("top_1pct", 100))
MOVER_COLUMNS = ("account_id", "baseline_score", "candidate_score", "delta",
                 "baseline_rank", "candidate_rank")


@dataclass(frozen=True)
class RunInfo:
    """What identifies one side of a comparison."""
    run_id: str
    snapshot_id: str
    algorithm: str              # "name@version"
    params: Mapping[str, Any]
    source: str                 # full module source text
    snapshot_label: str | None = None


@dataclass(frozen=True)
class Coverage:
    both: int
    only_baseline: int
    only_candidate: int


@dataclass(frozen=True)
class DeltaStats:
    accounts: int               # accounts in both runs
    changed: int                # accounts whose score differs at all
    mean: float
    median: float
    p5: float
    p95: float
    up_5: float                 # share of accounts in both that rose by more than 5 points
    down_5: float
    up_10: float
    down_10: float


@dataclass(frozen=True)
class RankAgreement:
    scope: str                  # "all", "top_10pct", "top_1pct" (of the baseline ranking)
    accounts: int
    spearman: float             # nan when a side is constant or fewer than 2 accounts
    kendall_tau_b: float


@dataclass(frozen=True)
class ParamChange:
    path: str                   # dotted key path into the nested params
    kind: str                   # "added", "removed" or "changed"
    baseline: Any               # None when added
    candidate: Any              # None when removed


@dataclass(frozen=True)
class Comparison:
    baseline: RunInfo
    candidate: RunInfo
    coverage: Coverage
    deltas: DeltaStats
    agreement: tuple[RankAgreement, ...]        # one per SCOPES entry, in that order
    rbo: dict[float, float]                     # p -> RBO_EXT over the two full rankings
    top_k_overlap: dict[int, float]             # k -> |top_k(b) & top_k(c)| / top_k_accounts[k]
    top_k_accounts: dict[int, int]              # k -> min(k, accounts of the shorter run): the most that can overlap
    band_labels: tuple[str, ...]
    bands: tuple[tuple[int, ...], ...]          # [baseline band][candidate band] -> accounts
    segments: pl.DataFrame                      # segments.SEGMENT_SCHEMA columns
    risers: pl.DataFrame                        # MOVER_COLUMNS, delta descending
    fallers: pl.DataFrame                       # MOVER_COLUMNS, delta ascending
    param_changes: tuple[ParamChange, ...]
    source_diff: str                            # unified diff, "" when the sources are equal
    any_difference: bool

    @property
    def spearman(self) -> float:
        """Spearman rho over all accounts in both runs."""
        return self.agreement[0].spearman

    @property
    def kendall_tau_b(self) -> float:
        """Kendall tau-b over all accounts in both runs."""
        return self.agreement[0].kendall_tau_b


# ---------------------------------------------------------------- rank statistics

@dataclass(frozen=True)
class _Ranked:
    order: np.ndarray   # positions by value descending (tie order as given)
    dense: np.ndarray   # tie group of each position, 0 = highest value
    counts: np.ndarray  # size of each tie group, highest value first


def _ranked(values: np.ndarray, order: np.ndarray | None = None, ties_by_position: bool = False) -> _Ranked:
    """Tie groups of values; ties_by_position orders each group by position (= account_id)."""
    n = values.size
    if order is None:
        order = np.argsort(-values)         # unstable but fast; ties fixed below when asked
    s = values[order]
    new = np.ones(n, dtype=bool)
    np.not_equal(s[1:], s[:-1], out=new[1:])
    group = np.cumsum(new) - 1
    if ties_by_position and n and group[-1] < n - 1:
        order = np.sort(group * n + order) % n      # same values, so group stays valid
    dense = np.empty(n, dtype=np.int64)
    dense[order] = group
    return _Ranked(order, dense, np.diff(np.append(np.flatnonzero(new), n)))


def _spearman(rx: _Ranked, ry: _Ranked) -> float:
    m = rx.dense.size
    if m < 2 or rx.counts.size < 2 or ry.counts.size < 2:
        return math.nan

    def centred(r: _Ranked) -> np.ndarray:
        starts = np.cumsum(r.counts) - r.counts
        return (starts + (r.counts + 1) / 2 - (m + 1) / 2)[r.dense]   # average rank - mean rank

    cx, cy = centred(rx), centred(ry)
    rho = np.dot(cx, cy) / math.sqrt(np.dot(cx, cx) * np.dot(cy, cy))
    return float(min(1.0, max(-1.0, rho)))


def _pairs(counts: np.ndarray) -> int:
    c = counts[counts > 1].astype(np.int64)
    return int((c * (c - 1) // 2).sum())


def _inversions(seq: np.ndarray) -> int:
    """Pairs i < j with seq[i] > seq[j] for non-negative ints: a bitwise (wavelet) merge, O(n log max)."""
    cur = np.asarray(seq, dtype=np.int64)
    n = cur.size
    if n < 2:
        return 0
    total, idx = 0, np.arange(n, dtype=np.int64)
    for b in range(int(cur.max()).bit_length() - 1, -1, -1):
        bit = (cur >> b) & 1
        ones = np.cumsum(bit)
        t = int(ones[-1])
        if t in (0, n):
            continue
        prefix = cur >> (b + 1)             # groups: equal higher bits, already contiguous
        starts = np.flatnonzero(np.r_[True, prefix[1:] != prefix[:-1]])
        sizes = np.diff(np.append(starts, n))
        ones0 = np.r_[0, ones]
        before = ones0[starts]
        zeros = sizes - (ones0[starts + sizes] - before)
        # each 0-bit element is inverted with every earlier 1-bit element of its group
        total += int(ones.sum()) - t * (t + 1) // 2 - int((zeros * before).sum())
        earlier = ones - bit - np.repeat(before, sizes)
        pos = np.where(bit == 1, np.repeat(starts + zeros, sizes) + earlier, idx - earlier)
        nxt = np.empty_like(cur)
        nxt[pos] = cur                      # stable partition of each group: 0s then 1s
        cur = nxt
    return total


def _kendall(rx: _Ranked, ry: _Ranked) -> float:
    m = rx.dense.size
    tot = m * (m - 1) // 2
    xtie, ytie = _pairs(rx.counts), _pairs(ry.counts)
    if m < 2 or xtie == tot or ytie == tot:
        return math.nan
    xs, ys = rx.dense[rx.order], ry.dense[rx.order]       # xs non-decreasing
    ny = ry.counts.size
    key = np.sort(xs * ny + ys)                            # by (x, y)
    ntie = _pairs(np.diff(np.append(np.flatnonzero(np.r_[True, key[1:] != key[:-1]]), m)))
    if _kendall_dis is not None:
        dis = int(_kendall_dis(xs.astype(np.intp), (ys + 1).astype(np.intp)))
    else:
        dis = _inversions(key % ny)
    con_minus_dis = tot - xtie - ytie + ntie - 2 * dis    # the same arithmetic as scipy
    tau = con_minus_dis / np.sqrt(tot - xtie) / np.sqrt(tot - ytie)
    return float(min(1.0, max(-1.0, tau)))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho (Pearson on average ranks); equals scipy.stats.spearmanr."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return _spearman(_ranked(x), _ranked(y))


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall tau-b with tie corrections; equals scipy.stats.kendalltau."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return _kendall(_ranked(x), _ranked(y))


def _rbo(curve: np.ndarray, s: int, l: int, p: float) -> float:  # noqa: E741 - the paper's names
    """RBO_EXT, Webber et al. 2010 eq. 32; curve[d-1] = overlap at depth d, s <= l lengths."""
    if not 0 < p < 1:
        raise ValueError(f"RBO persistence p must be in (0, 1), got {p}")
    if s == 0:
        return math.nan
    xs = float(curve[s - 1])
    tail = (float(curve[l - 1]) - xs) / l + xs / s
    # weights p^d < e^-700 underflow to 0, so the sum stops there
    cut = min(l, int(-700 / math.log(p)) + 1)
    d = np.arange(1, cut + 1, dtype=np.float64)
    agree = curve[:cut] / d
    if cut > s:
        agree[s:] += xs * (d[s:] - s) / (s * d[s:])
    if tail == 1.0 and bool((agree == 1.0).all()):
        return 1.0          # the sum below is 1 only up to rounding; agreement is exact here
    return (1 - p) / p * float(np.dot(agree, np.power(p, d))) + tail * p ** l


def _curve(maxpos: np.ndarray, depth: int) -> np.ndarray:
    """Overlap at depths 1..depth from max(position in b, position in c) of shared items."""
    return np.cumsum(np.bincount(maxpos, minlength=depth)[:depth])


def rank_biased_overlap(baseline: Sequence[Any], candidate: Sequence[Any], p: float) -> float:
    """RBO_EXT (eq. 32) of two rankings given best first, items unique within each."""
    b = pl.DataFrame({"item": list(baseline)}).with_row_index("pb")
    c = pl.DataFrame({"item": list(candidate)}).with_row_index("pc")
    if b["item"].n_unique() != b.height or c["item"].n_unique() != c.height:
        raise ValueError("a ranking lists an item twice")
    j = b.join(c, on="item", how="inner") if b.height and c.height else None
    maxpos = (np.maximum(j["pb"].to_numpy(), j["pc"].to_numpy()).astype(np.int64)
              if j is not None else np.zeros(0, dtype=np.int64))
    s, l = sorted((b.height, c.height))  # noqa: E741
    return _rbo(_curve(maxpos, l), s, l, p) if s else math.nan


# ---------------------------------------------------------------- algorithm diff

def _canon(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=repr)


def diff_params(baseline: Mapping[str, Any], candidate: Mapping[str, Any],
                _prefix: str = "") -> tuple[ParamChange, ...]:
    """Changed, added and removed keys of two nested parameter dicts, sorted by path."""
    out: list[ParamChange] = []
    for key in sorted(set(baseline) | set(candidate), key=str):
        path = f"{_prefix}{key}"
        if key not in candidate:
            out.append(ParamChange(path, "removed", baseline[key], None))
        elif key not in baseline:
            out.append(ParamChange(path, "added", None, candidate[key]))
        elif isinstance(baseline[key], Mapping) and isinstance(candidate[key], Mapping):
            out.extend(diff_params(baseline[key], candidate[key], f"{path}."))
        elif _canon(baseline[key]) != _canon(candidate[key]):   # 1 vs 1.0 counts as a change
            out.append(ParamChange(path, "changed", baseline[key], candidate[key]))
    return tuple(sorted(out, key=lambda c: c.path))


def diff_source(baseline: str, candidate: str, baseline_name: str = "baseline",
                candidate_name: str = "candidate") -> str:
    """Unified diff of two source texts; "" when they are equal."""
    lines = difflib.unified_diff(baseline.splitlines(), candidate.splitlines(),
                                 fromfile=baseline_name, tofile=candidate_name, lineterm="")
    return "\n".join(lines) + ("\n" if baseline != candidate else "")


# ---------------------------------------------------------------- the comparison

def _prepare(frame: pl.DataFrame, side: str) -> pl.DataFrame:
    missing = {"account_id", "score"} - set(frame.columns)
    if missing:
        raise ValueError(f"{side} run lacks column(s) {sorted(missing)}")
    frame = frame.select(pl.col("account_id").cast(pl.String), pl.col("score").cast(pl.Float64))
    if frame["account_id"].null_count() or frame["score"].null_count() or not frame["score"].is_finite().all():
        raise ValueError(f"{side} run has a missing account_id or a missing or infinite score")
    if not seg.strictly_sorted(frame["account_id"]):
        frame = frame.sort("account_id")
        if not seg.strictly_sorted(frame["account_id"]):
            raise ValueError(f"{side} run lists an account_id twice")
    return frame


def _delta_stats(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> DeltaStats:
    m = d.size
    if m == 0:
        return DeltaStats(0, 0, *(math.nan,) * 8)
    lo, hi = max((5 * m + 99) // 100 - 1, 0), max((95 * m + 99) // 100 - 1, 0)   # nearest rank
    part = np.partition(d, sorted({lo, hi, (m - 1) // 2, m // 2}))
    share = lambda mask: float(np.count_nonzero(mask)) / m   # noqa: E731
    return DeltaStats(
        accounts=m, changed=int(np.count_nonzero(x != y)), mean=float(d.mean()),
        median=float((part[(m - 1) // 2] + part[m // 2]) / 2), p5=float(part[lo]), p95=float(part[hi]),
        up_5=share(d > 5), down_5=share(d < -5), up_10=share(d > 10), down_10=share(d < -10))


def _band(scores: np.ndarray) -> np.ndarray:
    return np.clip((scores / 10).astype(np.int64), 0, 9)    # truncation = floor for scores >= 0


def _extreme(d: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest positive d, ties by index (= account_id)."""
    cand = np.flatnonzero(d > 0)
    if cand.size > n > 0:                   # keep the n largest, and every tie of the n-th
        cand = cand[d[cand] >= np.partition(d[cand], cand.size - n)[cand.size - n]]
    return cand[np.lexsort((cand, -d[cand]))][:max(n, 0)]


def rank_in(descending: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The rank of each score among a run's scores sorted descending: 1 + the number strictly
    higher (records.runs.RANK, the same definition in SQL)."""
    return np.searchsorted(-descending, -scores, side="left").astype(np.int64) + 1


def _movers(idx: np.ndarray, ids: pl.Series, x: np.ndarray, y: np.ndarray, d: np.ndarray,
            sorted_b: np.ndarray, sorted_c: np.ndarray) -> pl.DataFrame:
    xb, yc = x[idx], y[idx]
    return pl.DataFrame({
        "account_id": ids.gather(idx),
        "baseline_score": xb, "candidate_score": yc, "delta": d[idx],
        "baseline_rank": rank_in(sorted_b, xb), "candidate_rank": rank_in(sorted_c, yc),
    }, schema=dict(zip(MOVER_COLUMNS, (pl.String, pl.Float64, pl.Float64, pl.Float64, pl.Int64, pl.Int64), strict=True)))


def compare_runs(baseline: pl.DataFrame, candidate: pl.DataFrame, *, features: pl.DataFrame,
                 baseline_info: RunInfo, candidate_info: RunInfo, top: int = 20,
                 segments: Mapping[str, str] | None = None) -> Comparison:
    """Everything a score team needs to judge candidate against baseline."""
    b, c = _prepare(baseline, "baseline"), _prepare(candidate, "candidate")
    nb, nc = b.height, c.height
    if b["account_id"].equals(c["account_id"]):
        ib = ic = np.arange(nb)
        ids = b["account_id"]
    else:
        ib, ic = seg.match_sorted(b["account_id"], c["account_id"])
        ids = b["account_id"].gather(ib)
    m = ib.size
    sb, sc = b["score"].to_numpy(), c["score"].to_numpy()
    x, y = (sb, sc) if m == nb == nc else (sb[ib], sc[ic])
    d = np.round(y - x, 9)
    # segments first: a broken user expression fails before the heavy work
    aligned = seg.align_features(features, ids, [(b["account_id"], ib), (c["account_id"], ic)])
    table = seg.segment_changes(aligned, d, segments or {})

    # full rankings of each run (score desc, account_id) and the overlap curve they share
    run_b, run_c = _ranked(sb, ties_by_position=True), _ranked(sc, ties_by_position=True)
    ord_b, ord_c = run_b.order, run_c.order
    pos_b, pos_c = np.empty(nb, np.int64), np.empty(nc, np.int64)
    pos_b[ord_b], pos_c[ord_c] = np.arange(nb), np.arange(nc)
    s, l = sorted((nb, nc))  # noqa: E741 - shorter and longer ranking, as in the paper
    curve = _curve(np.maximum(pos_b, pos_c) if m == nb == nc else np.maximum(pos_b[ib], pos_c[ic]), l)
    rbo = {p: _rbo(curve, s, l, p) for p in RBO_P}
    # over min(k, accounts of the shorter run): a run against itself overlaps 1.0 however few its accounts
    top_k_n = {k: min(k, s) for k in TOP_K}
    top_k = {k: (float(curve[min(k, l) - 1]) / top_k_n[k] if top_k_n[k] else math.nan) for k in TOP_K}

    # accounts in both, in each run's ranking order (common index = position in ids)
    def in_common(order: np.ndarray, index: np.ndarray, n: int) -> np.ndarray:
        if m == n:                          # every account of the run is shared: index is identity
            return order
        where = np.full(n, -1, dtype=np.int64)
        where[index] = np.arange(m)
        t = where[order]
        return t[t >= 0]

    cob, coc = in_common(ord_b, ib, nb), in_common(ord_c, ic, nc)
    rx = run_b if m == nb else _ranked(x, cob)
    ry = run_c if m == nc else _ranked(y, coc)
    agreement = [RankAgreement("all", m, _spearman(rx, ry), _kendall(rx, ry))]
    for scope, div in SCOPES[1:]:
        k = (m + div - 1) // div
        sub = cob[:k]
        sx, sy = _ranked(x[sub], np.arange(k)), _ranked(y[sub])
        agreement.append(RankAgreement(scope, k, _spearman(sx, sy), _kendall(sx, sy)))

    matrix = np.bincount(_band(x) * 10 + _band(y), minlength=100).reshape(10, 10)

    sorted_b, sorted_c = sb[ord_b], sc[ord_c]
    risers = _movers(_extreme(d, top), ids, x, y, d, sorted_b, sorted_c)
    fallers = _movers(_extreme(-d, top), ids, x, y, d, sorted_b, sorted_c)

    return Comparison(
        baseline=baseline_info, candidate=candidate_info, coverage=Coverage(m, nb - m, nc - m),
        deltas=_delta_stats(x, y, d), agreement=tuple(agreement), rbo=rbo, top_k_overlap=top_k,
        top_k_accounts=top_k_n,
        band_labels=BAND_LABELS, bands=tuple(tuple(int(v) for v in row) for row in matrix),
        segments=table, risers=risers, fallers=fallers,
        param_changes=diff_params(baseline_info.params, candidate_info.params),
        source_diff=diff_source(baseline_info.source, candidate_info.source,
                                baseline_info.algorithm, candidate_info.algorithm),
        any_difference=bool(nb != m or nc != m or np.any(x != y)))

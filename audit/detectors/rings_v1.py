"""rings@1: find score earned inside closed rings and from puppet accounts.

Invariant: a pure function of a snapshot's inputs and its parameters. Every account is in at most
one group, so the interactions inside the groups are a well-defined set to leave out.

Self-contained source (stored and executed by the detector registry): imports only the standard
library, numpy, scipy and polars.

Engagement. Every interaction "source acted on target" counts 1 (a rating counts when it is
positive: distrust is no favour); self-interactions are ignored. Per ordered pair of accounts the
engagement is the number of such interactions; a pair is reciprocal when the other direction has
engagement too.

Rings (collusion rings: dense, mostly internal, highly reciprocal groups, as in review and citation
rings). An account is a ring candidate when it has 2..max_partners reciprocal partners and at least
min_member_reciprocal_share of the engagement it receives comes from accounts it engages back. On the
undirected graph of reciprocal pairs between candidates, a pair is strong when the two accounts share
many reciprocal partners: common / (min(degree) - 1) >= min_overlap (every pair of a fully
reciprocal ring of any size scores 1.0). The connected components of the strong pairs
(scipy.sparse.csgraph) with min_size..max_size accounts are the candidate rings; one is flagged when,
over all the snapshot's interactions,
- internal share: engagement received from other members / engagement the members receive
  >= min_internal_share (how little comes from outside),
- reciprocity: reciprocal ordered pairs inside / ordered pairs inside >= min_reciprocity,
- density: ordered pairs inside / (k (k - 1)) >= min_density.

Puppets (fake accounts that pump one target). An account is a puppet when nobody engages it
(engagement received <= max_received), it engages at most max_targets accounts and it gave at least
min_given interactions (a one-off retweet is the commonest real behaviour; a pump repeats). A target
(not a ring member, not a puppet) is flagged when at least min_puppets puppets engage it and they give
at least min_share of the engagement it receives. A puppet group is a connected component of flagged
targets and the puppets engaging them, with at most max_group_targets targets ("one target or one
small group"). The puppets' creation instants (accounts.created_at, when delivered) and their first
interaction in the window are evidence ("created close together"), not conditions.

Output: {"groups": one row per group, "members": one row per account in a group}, groups numbered
1.. in a fixed order (rings first, then puppet groups, each by their smallest account id).
"""
from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

NAME = "rings"
VERSION = 1
DESCRIPTION = (
    "Closed rings and puppet accounts: groups of 3 to 50 accounts whose engagement is mostly with "
    "each other (internal share of what they receive, reciprocity, density), and accounts whose whole "
    "activity is engaging one target or a small group, when they give that target at least half of "
    "what it receives."
)
CHANGELOG = "First version: rings by reciprocal overlap, internal share, reciprocity and density; puppets by exclusive engagement."
PARAMS = {
    "ring": {"min_size": 3, "max_size": 50, "max_partners": 100, "min_member_reciprocal_share": 0.5,
             "min_overlap": 0.5, "min_internal_share": 0.7, "min_reciprocity": 0.5, "min_density": 0.5},
    "puppets": {"max_received": 0, "max_targets": 3, "min_given": 2, "min_puppets": 5, "min_share": 0.5,
                "max_group_targets": 5},
}
PATTERNS = ("ring", "puppets")
ROLES = ("member", "target", "puppet")
GROUP_SCHEMA = {
    "group": pl.Int64, "pattern": pl.String, "accounts": pl.Int64, "targets": pl.Int64, "puppets": pl.Int64,
    "received": pl.Float64, "from_group": pl.Float64, "internal_share": pl.Float64,
    "outside_weight": pl.Float64, "outside_engagers": pl.Int64, "reciprocity": pl.Float64,
    "density": pl.Float64, "outward_share": pl.Float64, "created_spread_days": pl.Float64,
    "first_seen_spread_hours": pl.Float64,
}
MEMBER_SCHEMA = {"group": pl.Int64, "account_id": pl.String, "role": pl.String, "received": pl.Float64,
                 "from_group": pl.Float64, "given": pl.Float64, "to_group": pl.Float64}

_LUT_MAX = 1 << 25                                   # numbered ids below this use a lookup table
_POWERS = 10 ** np.arange(1, 10, dtype=np.uint32)    # 10 .. 10^9: digit counts of uint32 values


def _numbered(frame: pl.DataFrame, names: tuple[str, ...], prefix: str) -> list[np.ndarray] | None:
    """The numbers of the ids in columns NAMES, if each is PREFIX + a canonical decimal uint32."""
    body = (lambda c: pl.col(c).str.strip_prefix(prefix)) if prefix else pl.col
    parsed = frame.select(
        *[body(c).cast(pl.UInt32, strict=False).alias(c) for c in names],
        *[pl.when(pl.col(c).str.starts_with(prefix)).then(pl.col(c).str.len_bytes()).otherwise(0)
          .alias(f"{c}_len") for c in names])
    cut = len(prefix.encode())
    numbers = []
    for c in names:
        if parsed[c].null_count():
            return None
        number = parsed[c].to_numpy()
        # canonical ("u7", not "u07", "u+7", "7") iff it is exactly prefix + the digits of number
        digits = np.searchsorted(_POWERS, number, side="right") + 1
        if not np.array_equal(parsed[f"{c}_len"].to_numpy(), digits + cut):
            return None
        numbers.append(number)
    return numbers


def _index(interactions: pl.DataFrame,
           accounts: pl.DataFrame) -> tuple[pl.Series, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted universe of ids, and the int32 positions in it of source, target and account_id.

    Fast path: hashing 2 x 10M strings is the slowest step of a score, so when every id is
    one shared prefix (taken from the first id) + a canonical decimal below _LUT_MAX, like
    "123" or "u123", ids are parsed as numbers and mapped through a lookup table. The
    output is identical to the general path: under a common prefix, ids sort as their
    digit strings do.
    """
    interactions = interactions.select(pl.col("source", "target").cast(pl.String))
    accounts = accounts.select(pl.col("account_id").cast(pl.String))
    first = next((f[c][0] for f in (interactions, accounts) for c in f.columns if f.height), None)
    prefix = first.rstrip("0123456789") if isinstance(first, str) else None
    numbers = None if prefix is None else _numbered(interactions, ("source", "target"), prefix)
    if numbers is not None:
        more = _numbered(accounts, ("account_id",), prefix)
        numbers = None if more is None else numbers + more
    top = -1 if numbers is None else max(int(a.max()) for a in numbers if len(a))
    if 0 <= top < _LUT_MAX:
        present = np.zeros(top + 1, dtype=bool)
        for array in numbers:
            present[array] = True
        distinct = np.flatnonzero(present)
        digits = pl.Series("account_id", distinct).cast(pl.String)
        order = digits.arg_sort().to_numpy()
        lookup = np.zeros(top + 1, dtype=np.int32)
        lookup[distinct[order]] = np.arange(len(distinct), dtype=np.int32)
        ids = (prefix + digits.gather(order)).alias("account_id")
        return ids, lookup[numbers[0]], lookup[numbers[1]], lookup[numbers[2]]
    columns = [interactions["source"], interactions["target"], accounts["account_id"]]
    ids = pl.concat(columns).drop_nulls().unique().sort().alias("account_id")
    codes = [column.cast(pl.Enum(ids)).to_physical().to_numpy().astype(np.int32) for column in columns]
    return ids, codes[0], codes[1], codes[2]




def _empty() -> dict[str, pl.DataFrame]:
    return {"groups": pl.DataFrame(schema=GROUP_SCHEMA), "members": pl.DataFrame(schema=MEMBER_SCHEMA)}


def _components(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Connected-component labels of n nodes joined by the undirected pairs (a, b)."""
    graph = sp.csr_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _rings(n, ps, pt, pw, recip, received, p) -> np.ndarray:
    """Per account: the number (0..) of the candidate ring it is in, or -1."""
    partners = np.bincount(ps[recip], minlength=n)
    back = np.bincount(pt[recip], weights=pw[recip], minlength=n)
    cand = ((partners >= 2) & (partners <= int(p["max_partners"]))
            & (back >= float(p["min_member_reciprocal_share"]) * received) & (received > 0))
    label = np.full(n, -1, dtype=np.int64)
    edge = recip & (ps < pt) & cand[ps] & cand[pt]
    if not edge.any():
        return label
    nodes = np.flatnonzero(cand)
    at = np.full(n, -1, dtype=np.int64)
    at[nodes] = np.arange(len(nodes))
    a, b = at[ps[edge]], at[pt[edge]]
    m = len(nodes)
    adj = sp.csr_matrix((np.ones(2 * len(a)), (np.concatenate([a, b]), np.concatenate([b, a]))), shape=(m, m))
    degree = np.diff(adj.indptr)
    common = adj.multiply(adj @ adj).tocoo()         # common reciprocal partners of each reciprocal pair
    upper = common.row < common.col
    r, c, shared = common.row[upper], common.col[upper], common.data[upper]
    overlap = shared / np.maximum(np.minimum(degree[r], degree[c]) - 1, 1)
    strong = overlap >= float(p["min_overlap"])
    comp = _components(r[strong], c[strong], m)
    size = np.bincount(comp)
    ok = (size >= int(p["min_size"])) & (size <= int(p["max_size"]))
    keep = ok[comp]
    _, dense = np.unique(comp[keep], return_inverse=True)
    label[nodes[keep]] = dense
    return label


def _by_group(label: np.ndarray, values: np.ndarray | None, groups: int, where: np.ndarray | None = None) -> np.ndarray:
    pick = label >= 0 if where is None else (label >= 0) & where
    return np.bincount(label[pick], weights=None if values is None else values[pick], minlength=groups)


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.zeros(len(a))
    np.divide(a, b, out=out, where=b > 0)
    return out


def _spread(label: np.ndarray, values: np.ndarray, groups: int) -> np.ndarray:
    """Per group: max - min of the finite values of its accounts (NaN when none is known)."""
    pick = (label >= 0) & np.isfinite(values)
    lo, hi = np.full(groups, np.inf), np.full(groups, -np.inf)
    np.minimum.at(lo, label[pick], values[pick])
    np.maximum.at(hi, label[pick], values[pick])
    return np.where(np.isfinite(lo), hi - lo, np.nan)


def detect(interactions: pl.DataFrame, accounts: pl.DataFrame, params: dict) -> dict[str, pl.DataFrame]:
    """The groups found in a snapshot's inputs and the accounts in them (see the module docstring)."""
    ids, src, tgt, acc = _index(interactions, accounts)
    n = len(ids)
    if n == 0 or interactions.height == 0:
        return _empty()
    rating = (interactions["kind"] == "rating").to_numpy()
    positive = (interactions["weight"].fill_null(0.0) > 0).to_numpy()
    keep = (~rating | positive) & (src != tgt)
    s, t = src[keep].astype(np.int64), tgt[keep].astype(np.int64)
    pairs, count = np.unique(s * n + t, return_counts=True)
    ps, pt, pw = pairs // n, pairs % n, count.astype(np.float64)
    back = pt * n + ps
    # reciprocal: the reverse pair is stored too; the reverse keys are searched in sorted order (a binary
    # search per key in random order misses the cache on every step: 15 s instead of 2 at 10M pairs)
    order = np.argsort(back)
    ordered = back[order]
    at = np.minimum(np.searchsorted(pairs, ordered), len(pairs) - 1)
    recip = np.empty(len(pairs), dtype=bool)
    recip[order] = pairs[at] == ordered
    received = np.bincount(pt, weights=pw, minlength=n)
    given = np.bincount(ps, weights=pw, minlength=n)
    targets = np.bincount(ps, minlength=n)

    # rings: candidates, then the flags over all interactions
    rp = params["ring"]
    cand = _rings(n, ps, pt, pw, recip, received, rp)
    g = int(cand.max()) + 1
    gs, gt = cand[ps], cand[pt]
    inside = (gs >= 0) & (gs == gt)
    k = np.bincount(cand[cand >= 0], minlength=g).astype(np.float64)
    w_in = _by_group(gs, pw, g, inside)
    p_in = _by_group(gs, None, g, inside).astype(np.float64)
    r_in = _by_group(gs, None, g, inside & recip).astype(np.float64)
    recv_g = _by_group(gt, pw, g)
    share, reciprocity = _ratio(w_in, recv_g), _ratio(r_in, p_in)
    density = _ratio(p_in, k * (k - 1))
    flagged = ((share >= float(rp["min_internal_share"])) & (reciprocity >= float(rp["min_reciprocity"]))
               & (density >= float(rp["min_density"])))
    ring = np.where(np.r_[flagged, False][cand], cand, -1)     # cand -1 reads the trailing False
    _, dense = np.unique(ring[ring >= 0], return_inverse=True)
    ring[ring >= 0] = dense                                    # flagged rings numbered 0..

    # puppets: exclusive engagers, the targets they carry, and their groups
    pp = params["puppets"]
    member = ring >= 0
    puppet = ((received <= float(pp["max_received"])) & (targets <= int(pp["max_targets"]))
              & (given >= float(pp["min_given"])) & ~member)
    # first the targets carried by exclusive puppets (one target each), then the puppets of a small
    # group: candidates whose every target is such a target
    exclusive = puppet & (targets == 1)
    from_puppets = exclusive[ps]
    n_pup = np.bincount(pt[from_puppets], minlength=n)
    w_pup = np.bincount(pt[from_puppets], weights=pw[from_puppets], minlength=n)
    target = ((n_pup >= int(pp["min_puppets"])) & (w_pup >= float(pp["min_share"]) * received)
              & (received > 0) & ~member & ~puppet)
    to_targets = np.bincount(ps, weights=target[pt].astype(np.float64), minlength=n)
    puppet &= to_targets == targets                            # all of its targets are flagged targets
    link = puppet[ps] & target[pt]
    pup_group = np.full(n, -1, dtype=np.int64)
    if link.any():
        comp = _components(ps[link], pt[link], n)
        involved = target.copy()
        involved[ps[link]] = True
        per_comp = np.bincount(comp[target], minlength=int(comp.max()) + 1)
        ok = (per_comp >= 1) & (per_comp <= int(pp["max_group_targets"]))
        take = involved & ok[comp]
        _, dense = np.unique(comp[take], return_inverse=True)
        pup_group[take] = dense

    # one numbering: rings, then puppet groups, each by its smallest account (ids are sorted)
    rings_n = int(ring.max()) + 1
    pup_n = int(pup_group.max()) + 1
    if rings_n + pup_n == 0:
        return _empty()
    first = np.full(rings_n + pup_n, n, dtype=np.int64)
    label = np.where(ring >= 0, ring, np.where(pup_group >= 0, pup_group + rings_n, -1))
    nodes = np.flatnonzero(label >= 0)
    np.minimum.at(first, label[nodes], nodes)
    kind_of = np.r_[np.zeros(rings_n, dtype=np.int64), np.ones(pup_n, dtype=np.int64)]
    order = np.lexsort((first, kind_of))
    renumber = np.empty_like(order)
    renumber[order] = np.arange(len(order))
    label[nodes] = renumber[label[nodes]]
    groups = len(order)
    pattern = kind_of[order]

    role = np.where(member, 0, np.where(target, 1, 2))        # member, target, puppet
    gs, gt = label[ps], label[pt]
    inside = (gs >= 0) & (gs == gt)
    earner = (label >= 0) & (role < 2)                          # members and targets receive
    accounts_g = np.bincount(label[nodes], minlength=groups)
    targets_g = _by_group(label, None, groups, role == 1)
    puppets_g = _by_group(label, None, groups, role == 2)
    recv = _by_group(gt, pw, groups, earner[pt])
    w_in = _by_group(gs, pw, groups, inside & earner[pt])
    outside = (gt >= 0) & ~inside & earner[pt]
    engagers = np.unique(gt[outside] * n + ps[outside])
    outside_engagers = np.bincount(engagers // n, minlength=groups)
    p_in = _by_group(gs, None, groups, inside).astype(np.float64)
    r_in = _by_group(gs, None, groups, inside & recip).astype(np.float64)
    give = _by_group(gs, pw, groups)
    w_in_all = _by_group(gs, pw, groups, inside)
    kf = accounts_g.astype(np.float64)
    is_ring = pattern == 0
    created = accounts["created_at"].dt.epoch("us").to_numpy().astype(np.float64) if accounts.height else np.zeros(0)
    created_at = np.full(n, np.nan)
    if accounts.height:
        created_at[acc] = np.where(accounts["created_at"].is_null().to_numpy(), np.nan, created)
    pup_label = np.where(role == 2, label, -1)
    ts = interactions["ts"].dt.epoch("us").to_numpy()[keep]
    seen_rows = pup_label[s] >= 0
    first_seen = np.full(n, np.inf)
    np.minimum.at(first_seen, s[seen_rows], ts[seen_rows].astype(np.float64))
    first_seen[~np.isfinite(first_seen)] = np.nan
    null = np.full(groups, np.nan)
    group_frame = pl.DataFrame({
        "group": np.arange(1, groups + 1, dtype=np.int64),
        "pattern": np.array(PATTERNS)[pattern],
        "accounts": accounts_g.astype(np.int64),
        "targets": np.where(is_ring, -1, targets_g).astype(np.int64),
        "puppets": np.where(is_ring, -1, puppets_g).astype(np.int64),
        "received": recv, "from_group": w_in, "internal_share": _ratio(w_in, recv),
        "outside_weight": recv - w_in, "outside_engagers": outside_engagers.astype(np.int64),
        "reciprocity": np.where(is_ring, _ratio(r_in, p_in), null),
        "density": np.where(is_ring, _ratio(p_in, kf * (kf - 1)), null),
        "outward_share": np.where(is_ring, _ratio(give - w_in_all, give), null),
        "created_spread_days": np.where(is_ring, null, _spread(pup_label, created_at, groups) / 86_400e6),
        "first_seen_spread_hours": np.where(is_ring, null, _spread(pup_label, first_seen, groups) / 3_600e6),
    }).with_columns(pl.col("targets", "puppets").replace(-1, None),
                    pl.col(pl.Float64).fill_nan(None))
    from_group = np.bincount(pt[inside], weights=pw[inside], minlength=n)
    to_group = np.bincount(ps[inside], weights=pw[inside], minlength=n)
    members = pl.DataFrame({
        "group": label[nodes] + 1, "account_id": ids.gather(nodes),
        "role": np.array(ROLES)[role[nodes]], "received": received[nodes], "from_group": from_group[nodes],
        "given": given[nodes], "to_group": to_group[nodes]}).sort("group", "account_id")
    return {"groups": group_frame.cast(GROUP_SCHEMA), "members": members.cast(MEMBER_SCHEMA)}

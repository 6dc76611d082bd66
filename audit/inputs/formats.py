"""Read one input file into raw text columns plus parsed columns, ready for validation.

Nothing here touches the store. Every reader returns a `Parsed`: the frame in the input
format's canonical column names, with `_line` (the row's line number in the file) and the
parsed `ts`, `weight` next to their raw text (`ts_text`, `weight_text`) for error messages.
"""
from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from ..errors import ValidationError

FORMATS = ("auto", "csv", "parquet", "snap-higgs", "uvt", "signed-csv")
INTERACTION_COLUMNS = ("source", "target", "kind", "ts")
OPTIONAL_INTERACTION = ("weight", "topic", "event_id")
ACCOUNT_COLUMNS = ("account_id",)
OPTIONAL_ACCOUNT = ("handle", "followers", "following", "created_at")
HIGGS_KINDS = {"RT": "retweet", "MT": "mention", "RE": "reply"}
_NUMBER = r"^\s*-?\d+(\.\d+)?\s*$"
_MAX_EPOCH_S = (2**63 - 1) // 1_000_000 - 1


@dataclass(frozen=True)
class Parsed:
    """One file read into columns; `batch_kind` is interactions or accounts."""
    path: Path
    format: str
    batch_kind: str
    frame: pl.DataFrame
    missing: tuple[str, ...]          # required columns the file lacks


def _first_line(path: Path) -> str:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.read(4096)
    except (OSError, EOFError) as exc:
        raise ValidationError(f"{path}: cannot read the file ({exc})") from None
    if not head.strip():
        raise ValidationError(f"{path}: the file is empty (no rows); nothing was stored")
    if b"\x00" in head:
        raise ValidationError(f"{path}: not a text file (it contains NUL bytes); "
                              "give a CSV, a Parquet file or one of the text formats in --format")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) - exc.start > 4:   # not merely a character cut at the 4096-byte edge
            raise ValidationError(f"{path}: not UTF-8 text (byte {exc.start}: {head[exc.start:exc.start + 1]!r}); "
                                  "give a CSV, a Parquet file or one of the text formats in --format") from None
        text = head[:exc.start].decode("utf-8")
    return text.splitlines()[0] if text.splitlines() else ""


def detect_format(path: Path) -> str:
    """Tell the format from the suffix and the first line."""
    if path.suffix == ".parquet":
        return "parquet"
    line = _first_line(path)
    header = {c.strip().lower() for c in line.split(",")}
    if {"source", "target"} & header or "account_id" in header:
        return "csv"
    tokens = line.split()
    if len(tokens) == 4 and tokens[3] in HIGGS_KINDS:
        return "snap-higgs"
    if len(tokens) == 3 and all(re.match(_NUMBER, t) for t in tokens[2:]):
        return "uvt"
    commas = line.split(",")
    if len(commas) == 4 and all(re.match(_NUMBER, t) for t in commas):
        return "signed-csv"
    raise ValidationError(
        f'{path}: cannot tell the format from the first line "{line[:80]}": a CSV needs a header naming '
        f"{', '.join(INTERACTION_COLUMNS)} (interactions) or {', '.join(ACCOUNT_COLUMNS)} (accounts); "
        f"for another layout pass --format ({', '.join(FORMATS[1:])})")


def _bad_line(path: Path, separator: str, fields: int | None) -> str:
    """On the failure path only: the first line the parser could not take, so the message names it."""
    opener = gzip.open if path.suffix == ".gz" else open
    quoting = csv.QUOTE_MINIMAL if separator == "," else csv.QUOTE_NONE
    try:
        with opener(path, "rb") as fh:
            for n, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return f"line {n}: byte {exc.start + 1} ({raw[exc.start:exc.start + 1]!r}) is not UTF-8"
                row = next(csv.reader([text.rstrip("\r\n")], delimiter=separator, quoting=quoting), [])
                if fields is None:
                    fields = len(row)          # the header
                elif len(row) > fields:
                    return f"line {n} has {len(row)} fields, expected {fields}"
    except (OSError, EOFError, csv.Error):
        return ""
    return ""


def _read_text(path: Path, *, separator: str, names: list[str] | None) -> pl.DataFrame:
    _first_line(path)  # empty / binary files get a clear message before the parser sees them
    try:
        df = pl.read_csv(path, separator=separator, has_header=names is None, new_columns=names,
                         infer_schema=False, quote_char='"' if separator == "," else None,
                         truncate_ragged_lines=False)
    except pl.exceptions.NoDataError:
        raise ValidationError(f"{path}: the file is empty (no rows); nothing was stored") from None
    except (pl.exceptions.ComputeError, pl.exceptions.ShapeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        where = _bad_line(path, separator, None if names is None else len(names))
        raise ValidationError(f"{path}: cannot be read as {'CSV' if separator == ',' else 'text columns'}: "
                              f"{first}{'; ' + where if where else ''}") from None
    first_line = 2 if names is None else 1
    df = df.with_row_index("_line", offset=first_line).with_columns(pl.col("_line").cast(pl.Int64))
    # a blank line (every field empty, e.g. at the end of the file) is not a row
    df = df.filter(~pl.all_horizontal(pl.exclude("_line").is_null()))
    if df.height == 0:
        raise ValidationError(f"{path}: the file has a header but no rows; nothing was stored")
    return df.rename({c: c.strip().lower() for c in df.columns if c != "_line"}) if names is None else df


_ISO_ZONED = ("%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z")
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d")
_UTC = pl.Datetime("us", "UTC")


def _epoch(t: pl.Series) -> pl.Series:
    """Epoch seconds (integer or decimal) -> UTC instants, exactly (no float rounding)."""
    if not t.str.contains(".", literal=True).any():
        whole = t.cast(pl.Int64, strict=False)
        frac = pl.repeat(0, len(t), dtype=pl.Int64, eager=True)
    else:
        whole = t.str.extract(r"^(-?\d+)", 1).cast(pl.Int64, strict=False)
        frac = t.str.extract(r"\.(\d+)$", 1).str.slice(0, 6).str.pad_end(6, "0").cast(pl.Int64, strict=False)
    sign = pl.Series(np.where(t.str.starts_with("-").fill_null(False).to_numpy(), -1, 1))
    # Beyond this, seconds * 1e6 overflows Int64 and wraps to a plausible past instant: refuse it.
    whole = whole.to_frame("w").select(pl.when(pl.col("w").is_between(-_MAX_EPOCH_S, _MAX_EPOCH_S))
                                       .then(pl.col("w"))).to_series()
    us = whole * 1_000_000 + sign * frac.fill_null(0)
    return pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC")


def _iso(t: pl.Series) -> pl.Series:
    """ISO 8601 text -> UTC instants; each format is tried only on the rows still unparsed."""
    out = pl.Series([None] * len(t), dtype=_UTC)
    for fmt in _ISO_ZONED + _ISO_NAIVE:
        todo = out.is_null() & t.is_not_null()
        if not todo.any():
            break
        idx = todo.arg_true()
        part = t.gather(idx)
        parsed = (part.str.to_datetime(fmt, time_zone="UTC", time_unit="us", strict=False) if fmt in _ISO_ZONED
                  else part.str.to_datetime(fmt, time_unit="us", strict=False).dt.replace_time_zone("UTC"))
        out = out.scatter(idx, parsed)
    return out


def parse_ts(text: pl.Series) -> pl.Series:
    """UTC instants from ISO 8601 text or epoch seconds (integer or decimal, parsed exactly);
    null where the text is neither. Each branch runs only on the rows it applies to."""
    t = text.cast(pl.String).str.strip_chars()
    is_epoch = t.str.contains(_NUMBER).fill_null(False)
    if is_epoch.all():
        return _epoch(t).alias(text.name)
    if not is_epoch.any():
        return _iso(t).alias(text.name)
    out = pl.Series([None] * len(t), dtype=_UTC)
    idx = is_epoch.arg_true()
    out = out.scatter(idx, _epoch(t.gather(idx)))
    idx = (~is_epoch).arg_true()
    return out.scatter(idx, _iso(t.gather(idx))).alias(text.name)


def _finish_interactions(df: pl.DataFrame) -> pl.DataFrame:
    """Add parsed ts and weight next to their text; absent optional columns become nulls."""
    for col in OPTIONAL_INTERACTION:
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias(col))
    dtype = df.schema["ts"]
    if isinstance(dtype, pl.Datetime):
        ts = pl.col("ts").dt.cast_time_unit("us")
        ts = ts.dt.convert_time_zone("UTC") if dtype.time_zone else ts.dt.replace_time_zone("UTC")
        df = df.with_columns(pl.col("ts").cast(pl.String).alias("ts_text"), ts.alias("ts"))
    else:
        df = df.with_columns(pl.col("ts").cast(pl.String).alias("ts_text"))
        df = df.with_columns(parse_ts(df["ts_text"]).alias("ts"))
    w = pl.col("weight").cast(pl.String).str.strip_chars()
    df = df.with_columns(
        w.alias("weight_text"),
        pl.when(w.is_null() | (w == "")).then(1.0).otherwise(w.cast(pl.Float64, strict=False)).alias("weight"),
    )
    return df.with_columns([pl.col(c).cast(pl.String).str.strip_chars() for c in ("source", "target", "kind")]
                           + [pl.col(c).cast(pl.String) for c in ("topic", "event_id")])


def _finish_accounts(df: pl.DataFrame) -> pl.DataFrame:
    for col in OPTIONAL_ACCOUNT:
        if col not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias(col))
    created = pl.col("created_at").cast(pl.String)
    return df.with_columns(
        pl.col("account_id").cast(pl.String).str.strip_chars(),
        pl.col("handle").cast(pl.String),
        created.alias("created_at_text"), parse_ts(df["created_at"].cast(pl.String)).alias("created_at"),
        pl.col("followers").cast(pl.String).alias("followers_text"),
        pl.col("following").cast(pl.String).alias("following_text"),
        pl.col("followers").cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False).alias("followers"),
        pl.col("following").cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False).alias("following"),
    )


def read_input(path: str | Path, fmt: str = "auto", *, kind: str | None = None) -> Parsed:
    """Read PATH in FORMAT into a `Parsed` frame; raise ValidationError when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f'{path}: no such file')
    if fmt not in FORMATS:
        raise ValidationError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    if kind is not None and fmt != "uvt":
        raise ValidationError(f"--kind applies only to --format uvt, not {fmt}")
    if fmt == "parquet":
        try:
            df = pl.read_parquet(path)
        except Exception as exc:  # polars raises several families for a bad file
            raise ValidationError(f"{path}: cannot be read as Parquet: {str(exc).splitlines()[0]}") from None
        if df.height == 0:
            raise ValidationError(f"{path}: the file is empty (no rows); nothing was stored")
        df = df.rename({c: c.lower() for c in df.columns}).with_row_index("_line", offset=1) \
            .with_columns(pl.col("_line").cast(pl.Int64))
    elif fmt == "csv":
        df = _read_text(path, separator=",", names=None)
    elif fmt == "snap-higgs":
        df = _read_text(path, separator=" ", names=["source", "target", "ts", "code"])
        df = df.with_columns(pl.col("code").replace(HIGGS_KINDS).alias("kind")).drop("code")
    elif fmt == "uvt":
        df = _read_text(path, separator=" ", names=["source", "target", "ts"])
        df = df.with_columns(pl.lit(kind or "mention").alias("kind"))
    else:  # signed-csv
        df = _read_text(path, separator=",", names=["source", "target", "weight", "ts"])
        df = df.with_columns(pl.lit("rating").alias("kind"))
    is_accounts = "account_id" in df.columns and not {"source", "target"} & set(df.columns)
    required = ACCOUNT_COLUMNS if is_accounts else INTERACTION_COLUMNS
    missing = tuple(c for c in required if c not in df.columns)
    if missing:
        return Parsed(path, fmt, "accounts" if is_accounts else "interactions", df, missing)
    frame = _finish_accounts(df) if is_accounts else _finish_interactions(df)
    return Parsed(path, fmt, "accounts" if is_accounts else "interactions", frame, ())

"""Chart geometry as plain data; the templates draw it as inline SVG.

Invariant: a chart is a pure function of its inputs. Every text in a chart is a tuple of
(value, kind) pieces that the template formats with the registered filter of that kind, so a
number looks the same in a chart as in the tables beside it. Coordinates are in viewBox units.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH = 800.0
Text = tuple[tuple[Any, str], ...]          # pieces: (value, filter kind)


def counted(n: int, noun: str) -> tuple[Any, ...]:
    """Pieces for "1 account" / "2 accounts": the count formatted, the noun in its number."""
    return ((n, "count"), f" {noun}" if n == 1 else f" {noun}s")


def say(*pieces: Any) -> Text:
    """Text from pieces: a bare value is plain text, a (value, kind) tuple is formatted by kind."""
    return tuple(p if isinstance(p, tuple) else (p, "text") for p in pieces)


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: Text
    anchor: str = "middle"      # start | middle | end
    style: str = "tick"         # CSS class: tick, title, value, cell, cell-dark, marker, legend


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    style: str = "grid"         # CSS class: grid, axis, zero, marker, link


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float
    tone: str                   # CSS class: bar, pos, neg, total, heat, diag, swatch-*
    tip: Text = ()
    opacity: float = 1.0


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    tip: Text


@dataclass(frozen=True)
class Series:
    style: str                  # CSS class of the line and its dots
    points: tuple[Dot, ...]


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    title: str                  # what the chart shows, for screen readers and the SVG <title>
    lines: tuple[Line, ...] = ()
    boxes: tuple[Box, ...] = ()
    series: tuple[Series, ...] = ()
    labels: tuple[Label, ...] = ()


def _r(v: float) -> float:
    return round(float(v), 2) + 0.0         # + 0.0 turns -0.0 into 0.0


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], about n intervals."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw - 1e-12)
    start, end = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) + 0.0 for i in range(start, end + 1)]


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: _r(a + (float(v) - lo) / span * (b - a))


def _y_axis(ticks: Sequence[float], y, left: float, right: float, kind: str) -> tuple[list[Line], list[Label]]:
    lines = [Line(left, y(t), right, y(t), "grid") for t in ticks]
    labels = [Label(left - 8, _r(y(t) + 4), say((t, kind)), "end") for t in ticks]
    return lines, labels


def histogram(bins: Sequence[tuple[float, float, int]], *, title: str, x_title: str = "score",
              y_title: str = "accounts") -> Chart:
    """Vertical bars over [low, high) bins; a log count axis when counts span over two decades."""
    h, left, right, top, bottom = 316.0, 76.0, WIDTH - 20, 42.0, 266.0
    counts = [c for _, _, c in bins]
    biggest = max(counts, default=0)
    smallest = min((c for c in counts if c > 0), default=1)
    log = biggest / smallest > 100
    if log:
        decades = max(1, math.ceil(math.log10(biggest)))
        ticks = [10.0 ** k for k in range(decades + 1)]
        ly = _scale(0.0, float(decades), bottom, top)
        y = lambda v: ly(math.log10(v)) if v >= 1 else bottom        # noqa: E731
        y_title = f"{y_title} (log scale)"
    else:
        ticks = nice_ticks(0, max(biggest, 1))
        y = _scale(0.0, ticks[-1], bottom, top)
    lo, hi = (bins[0][0], bins[-1][1]) if bins else (0.0, 100.0)
    x = _scale(lo, hi, left, right)
    lines, labels = _y_axis(ticks, y, left, right, "count")
    boxes = []
    for low, high, count in bins:
        top_y = min(y(count), bottom - 1.5) if count else bottom
        boxes.append(Box(_r(x(low) + 1), top_y, _r(x(high) - x(low) - 2), _r(bottom - top_y), "bar",
                         say((low, "tick"), "-", (high, "tick"), ": ", *counted(count, "account"))))
    for t in nice_ticks(lo, hi, 10):
        lines.append(Line(x(t), bottom, x(t), bottom + 5, "axis"))
        labels.append(Label(x(t), bottom + 20, say((t, "tick"))))
    lines.append(Line(left, bottom, right, bottom, "axis"))
    labels += [Label(_r((left + right) / 2), h - 8, say(x_title), "middle", "title"),
               Label(8.0, 16.0, say(y_title), "start", "title")]
    return Chart(WIDTH, h, title, tuple(lines), tuple(boxes), (), tuple(labels))


def hbars(items: Sequence[tuple[Text, float]], *, title: str, kind: str, x_title: str = "",
          tones: Sequence[str] | None = None) -> Chart:
    """One horizontal bar per item, its label above it; bars diverge from zero when any is negative."""
    row, left, right, top = 44.0, 16.0, WIDTH - 16, 16.0
    items = [(t, 0.0 if math.isnan(v) else float(v)) for t, v in items]     # undefined draws as nothing
    values = [v for _, v in items]
    most = max((abs(v) for v in values), default=0.0) or 1.0
    diverging = any(v < 0 for v in values)
    pad = 70.0                                  # room for the value printed beyond the bar end
    x = _scale(-most if diverging else 0.0, most, left + (pad if diverging else 0.0), right - pad)
    zero = x(0.0)
    boxes, labels = [], []
    for i, (text, v) in enumerate(items):
        y0 = top + i * row
        labels.append(Label(left, _r(y0 + 12), text, "start", "tick"))
        end = x(v)
        b_tone = tones[i] if tones else "neg" if v < 0 else "pos"
        boxes.append(Box(min(zero, end), _r(y0 + 18), _r(max(abs(end - zero), 1.0)), 14.0, b_tone,
                         text + say(": ", (v, kind))))
        labels.append(Label(_r(end - 6) if v < 0 else _r(max(end, zero + 1) + 6), _r(y0 + 30),
                            say((v, kind)), "end" if v < 0 else "start", "value"))
    bottom = top + len(items) * row + 4
    lines = [Line(zero, _r(top + i * row + 15), zero, _r(top + i * row + 35), "zero") for i in range(len(items))]
    h = bottom + (34.0 if x_title else 8.0)
    if x_title:
        labels.append(Label(_r((left + right) / 2), h - 10, say(x_title), "middle", "title"))
    return Chart(WIDTH, _r(h), title, tuple(lines), tuple(boxes), (), tuple(labels))


def heatmap(row_labels: Sequence[str], col_labels: Sequence[str], matrix: Sequence[Sequence[int]], *,
            title: str, row_title: str, col_title: str) -> Chart:
    """A matrix of counts: shade grows with log(1 + count); the diagonal is outlined."""
    left, top = 110.0, 56.0
    cw = (WIDTH - left - 16) / max(len(col_labels), 1)
    ch = 32.0
    biggest = max((v for r in matrix for v in r), default=0)
    boxes, outlines = [], []
    labels = [Label(_r(left + cw * len(col_labels) / 2), 16.0, say(col_title), "middle", "title"),
              Label(8.0, 16.0, say(row_title), "start", "title")]
    for j, name in enumerate(col_labels):
        labels.append(Label(_r(left + (j + 0.5) * cw), top - 10, say(name)))
    for i, (name, values) in enumerate(zip(row_labels, matrix)):
        y0 = top + i * ch
        labels.append(Label(left - 8, _r(y0 + ch / 2 + 4), say(name), "end"))
        for j, v in enumerate(values):
            x0 = left + j * cw
            shade = math.log1p(v) / math.log1p(biggest) if biggest and v else 0.0
            boxes.append(Box(_r(x0), _r(y0), _r(cw), ch, "heat", say(
                row_title, " ", name, ", ", col_title, " ", col_labels[j], ": ", *counted(v, "account")),
                round(0.08 + 0.92 * shade, 3) if v else 0.0))
            if v:
                labels.append(Label(_r(x0 + cw / 2), _r(y0 + ch / 2 + 4), say((v, "count")), "middle",
                                    "cell-dark" if shade > 0.6 else "cell"))
            if i == j:
                outlines.append(Box(_r(x0 + 1), _r(y0 + 1), _r(cw - 2), ch - 2, "diag"))
    h = top + len(row_labels) * ch + 8
    return Chart(WIDTH, _r(h), title, (), tuple(boxes + outlines), (), tuple(labels))


def line_chart(categories: Sequence[str], series: Sequence[tuple[str, str, Sequence[float | None]]], *,
               title: str, markers: Sequence[tuple[int, Text]] = (), links: Sequence[tuple[int, float, float]] = (),
               y_range: tuple[float, float] = (0.0, 100.0), y_title: str = "score") -> Chart:
    """Series over categories (periods) with a legend, vertical markers and links between series."""
    h, left, right, top, bottom = 350.0, 60.0, WIDTH - 24, 62.0, 300.0
    n = len(categories)
    step = (right - left) / n if n else 1.0
    x = lambda i: _r(left + (i + 0.5) * step)                  # noqa: E731
    ticks = nice_ticks(*y_range)
    y = _scale(ticks[0], ticks[-1], bottom, top)
    lines, labels = _y_axis(ticks, y, left, right, "tick")
    lines.append(Line(left, bottom, right, bottom, "axis"))
    every = max(1, math.ceil(n / 8))                            # at most ~8 period labels fit
    for i, name in enumerate(categories):
        lines.append(Line(x(i), bottom, x(i), bottom + 5, "axis"))
        if i % every == 0:
            labels.append(Label(x(i), bottom + 20, say(name)))
    for i, a, b in links:
        lines.append(Line(x(i), y(a), x(i), y(b), "link"))
    for i, text in markers:
        lines.append(Line(x(i), top - 24, x(i), bottom, "marker"))
        right_half = x(i) > (left + right) / 2                  # keep the label inside the chart
        labels.append(Label(_r(x(i) - 5 if right_half else x(i) + 5), top - 12, text,
                            "end" if right_half else "start", "marker"))
    drawn = []
    legend_x = left
    boxes = []
    for name, style, values in series:
        dots = tuple(Dot(x(i), y(v), say(name, " ", categories[i], ": ", (v, "score")))
                     for i, v in enumerate(values) if v is not None)
        drawn.append(Series(style, dots))
        boxes.append(Box(legend_x, 12.0, 26.0, 4.0, f"swatch-{style}"))
        labels.append(Label(legend_x + 32, 18.0, say(name), "start", "legend"))
        legend_x += 40 + 8 * len(name)
    if markers:
        lines.append(Line(_r(legend_x + 13), 6.0, _r(legend_x + 13), 24.0, "marker"))
        labels.append(Label(legend_x + 22, 18.0, say("algorithm changed"), "start", "legend"))
    labels += [Label(left - 8, top - 18, say(y_title), "end", "title"),
               Label(_r((left + right) / 2), h - 10, say("period"), "middle", "title")]
    return Chart(WIDTH, h, title, tuple(lines), tuple(boxes), tuple(drawn), tuple(labels))


def waterfall(start: tuple[Text, float], steps: Sequence[tuple[Text, float]], end: tuple[Text, float], *,
              title: str, y_title: str = "score") -> Chart:
    """Start total, signed steps, end total; each step floats from the running total."""
    h, left, right, top, bottom = 300.0, 60.0, WIDTH - 20, 30.0, 244.0
    running, spans = start[1], []
    for _, d in steps:
        spans.append((running, running + d))
        running += d
    highest = max([start[1], end[1], *(max(s) for s in spans)], default=1.0)
    lowest = min([0.0, *(min(s) for s in spans), end[1]])
    ticks = nice_ticks(lowest, highest)
    y = _scale(ticks[0], ticks[-1], bottom, top)
    lines, labels = _y_axis(ticks, y, left, right, "tick")
    cols = [(start[0], 0.0, start[1], "total", start[1], "score"),
            *((t, a, b, "pos" if b >= a else "neg", b - a, "points") for (t, _), (a, b) in zip(steps, spans)),
            (end[0], 0.0, end[1], "total", end[1], "score")]
    w = (right - left) / len(cols)
    boxes = []
    for i, (text, a, b, tone, value, kind) in enumerate(cols):
        x0, y_hi, y_lo = left + i * w, min(y(a), y(b)), max(y(a), y(b))
        if y_lo - y_hi < 1.5:                                   # a tiny step stays visible
            y_hi = _r(y_lo - 1.5)
        boxes.append(Box(_r(x0 + w * 0.2), y_hi, _r(w * 0.6), _r(y_lo - y_hi), tone, text + say(": ", (value, kind))))
        labels.append(Label(_r(x0 + w / 2), _r(y_hi - 6), say((value, kind)), "middle", "value"))
        labels.append(Label(_r(x0 + w / 2), bottom + 20, text))
        if i < len(cols) - 1:
            lines.append(Line(_r(x0 + w * 0.8), y(b), _r(x0 + w * 1.2), y(b), "link"))
    lines.append(Line(left, y(0.0), right, y(0.0), "axis"))
    labels.append(Label(left - 8, top - 14, say(y_title), "end", "title"))
    return Chart(WIDTH, h, title, tuple(lines), tuple(boxes), (), tuple(labels))

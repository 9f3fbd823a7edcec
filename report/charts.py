"""Charts as inline SVG, drawn here in Python: the report opens from a shared drive on an
intranet without internet, so it carries its pictures inside it (no script, no style
sheet, no font from anywhere). Pure functions: numbers in, markup out.

Every chart is an ``<svg data-chart="…">`` whose marks (bars, lines, points) carry
``data-value``, so that a reader of the page — a test in a browser — can check that each
drew and what it says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

# A palette that stays apart in print and for the common colour blindnesses (Okabe-Ito).
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = 'font-family="sans-serif" font-size="12"'
POSITIVE, NEGATIVE = "#1a7f37", "#c62828"


def colours(names: Sequence[str]) -> dict[str, str]:
    """One colour per series name, in order, the same in every chart of the page."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _svg(name: str, width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg data-chart="{escape(name)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{''.join(body)}</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} {extra}>{escape(text)}</text>'


def _text_width(text: str) -> float:
    """About how wide ``text`` draws at 12px: a CJK character is twice a Latin one."""
    return sum(12 if ord(ch) > 0x2E80 else 7 for ch in text)


def _legend(
    series: Sequence[str],
    palette: Mapping[str, str],
    x: float,
    y: float,
    width: float,
    labels: Mapping[str, str],
) -> tuple[list[str], float]:
    """The legend, wrapped to ``width``; and the height it takes."""
    out, at, line = [], x, 0
    for s in series:
        label = labels.get(s, s)
        step = 24 + _text_width(label)
        if at + step > width and at > x:
            at, line = x, line + 1
        top = y + 18 * line
        out.append(f'<rect x="{at:.1f}" y="{top - 9:.1f}" width="10" height="10" fill="{palette[s]}"/>')
        out.append(_text(at + 14, top, label))
        at += step
    return out, 18 * (line + 1)


def stacked_bars(
    name: str,
    title: str,
    rows: Sequence[tuple[str, Mapping[str, float]]],
    series: Sequence[str],
    palette: Mapping[str, str] | None = None,
    width: int = 720,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Horizontal bars, one per row label, stacked by series (households to visit per
    township by rule; links per source by status). Each segment says its value."""
    palette = palette or colours(series)
    label_w, bar_h, gap = 150, 18, 8
    total = max((sum(v.get(s, 0) for s in series) for _, v in rows), default=0) or 1
    scale = (width - label_w - 60) / total
    body, legend_h = _legend(series, palette, label_w, 14, width, labels or {})
    top = legend_h + 10
    height = top + len(rows) * (bar_h + gap) + 10
    for i, (label, values) in enumerate(rows):
        y = top + i * (bar_h + gap)
        body.append(_text(label_w - 6, y + bar_h - 4, label, "end"))
        x = float(label_w)
        for s in series:
            v = values.get(s, 0)
            if not v:
                continue
            w = v * scale
            body.append(
                f'<rect data-value="{v:g}" data-series="{escape(s)}" data-row="{escape(label)}" x="{x:.1f}" '
                f'y="{y}" width="{max(w, 1):.1f}" height="{bar_h}" fill="{palette[s]}">'
                f"<title>{escape(label)} · {escape((labels or {}).get(s, s))}: {v:g}</title></rect>"
            )
            x += w
        body.append(_text(x + 4, y + bar_h - 4, f"{sum(values.get(s, 0) for s in series):g}"))
    return _svg(name, width, height, body, title)


def lines(
    name: str,
    title: str,
    window: tuple[date, date],
    days: Sequence[date],
    series: Mapping[str, Sequence[float]],
    palette: Mapping[str, str] | None = None,
    width: int = 720,
    height: int = 240,
    labels: Mapping[str, str] | None = None,
) -> str:
    """One line per series over the nights that ran (warnings per rule per night), placed
    by date within ``window`` (a night that did not run is a gap in time, not a zero), with
    a point on every night so a single night still shows."""
    palette = palette or colours(list(series))
    left, right, bottom = 40, 16, 28
    peak = max((max(v, default=0) for v in series.values()), default=0) or 1
    first, last = window
    span = max((last - first).days, 1)
    body, legend_h = _legend(list(series), palette, left, 14, width, labels or {})
    top = legend_h + 14
    height += legend_h

    def px(d: date) -> float:
        return left + (d - first).days * (width - left - right) / span

    def py(v: float) -> float:
        return top + (1 - v / peak) * (height - top - bottom)

    body.append(f'<line x1="{left}" y1="{py(0):.1f}" x2="{width - right}" y2="{py(0):.1f}" stroke="#999"/>')
    body.append(_text(left - 4, py(peak) + 4, f"{peak:g}", "end"))
    body.append(_text(left - 4, py(0) + 4, "0", "end"))
    body.append(_text(px(first), height - 8, first.isoformat()))
    body.append(_text(px(last), height - 8, last.isoformat(), "end"))
    for s, values in series.items():
        points = " ".join(f"{px(d):.1f},{py(v):.1f}" for d, v in zip(days, values, strict=True))
        body.append(
            f'<polyline data-series="{escape(s)}" points="{points}" fill="none" stroke="{palette[s]}" stroke-width="2"/>'
        )
        body += [
            f'<circle data-value="{v:g}" data-series="{escape(s)}" data-day="{d.isoformat()}" cx="{px(d):.1f}" '
            f'cy="{py(v):.1f}" r="3" fill="{palette[s]}"><title>{d.isoformat()} · {escape(s)}: {v:g}</title></circle>'
            for d, v in zip(days, values, strict=True)
        ]
    return _svg(name, width, height, body, title)


def diverging_bars(
    name: str,
    title: str,
    rows: Sequence[tuple[str, str, float]],
    width: int = 720,
) -> str:
    """Signed bars about zero, grouped (a model's match weight per comparison level, as
    Splink's match-weights chart): green for evidence for a match, red against."""
    label_w, bar_h, gap, top = 300, 14, 4, 10
    peak = max((abs(v) for _, _, v in rows), default=0) or 1
    half = (width - label_w - 100) / 2  # 50 px either side for the figures beyond the bars
    zero = label_w + 50 + half
    height = top + len(rows) * (bar_h + gap) + 10
    body = [f'<line x1="{zero:.1f}" y1="{top - 4}" x2="{zero:.1f}" y2="{height - 6}" stroke="#999"/>']
    previous = None
    for i, (group, level, v) in enumerate(rows):
        y = top + i * (bar_h + gap)
        label = f"{group} · {level}" if group != previous else level
        previous = group
        body.append(_text(label_w - 6, y + bar_h - 3, label, "end"))
        w = abs(v) / peak * half
        x = zero if v >= 0 else zero - w
        body.append(
            f'<rect data-value="{v:.2f}" data-row="{escape(group)} · {escape(level)}" x="{x:.1f}" y="{y}" '
            f'width="{max(w, 1):.1f}" height="{bar_h}" fill="{POSITIVE if v >= 0 else NEGATIVE}">'
            f"<title>{escape(group)} · {escape(level)}: {v:+.2f}</title></rect>"
        )
        body.append(
            _text(
                zero + (w + 4 if v >= 0 else -w - 4), y + bar_h - 3, f"{v:+.1f}", "start" if v >= 0 else "end"
            )
        )
    return _svg(name, width, height, body, title)

"""Hand-written inline SVG charts: no JavaScript, no network, nothing to load.

Every chart returns ``markupsafe.Markup``; every piece of text that reaches the SVG (series
names, stage names, verbs and nouns parsed from generated instructions) goes through
``markupsafe.escape`` first, so generated text can never become markup. Tooltips are SVG
``<title>`` elements (shown by every browser on hover).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#86bcb6",
    "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#499894",
    "#d37295", "#fabfd2", "#d4a6c8", "#79706e", "#bab0ac",
)  # fmt: skip
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 28, 44
#: The smallest drawn size of a chart relative to its viewBox: 12px labels stay >= 9.6px.
MIN_SCALE = 0.8


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    """The chart element. SVG text scales with the element, so the element is never drawn wider
    than its viewBox (no 30px tick labels on a wide screen) nor narrower than ``MIN_SCALE`` of it
    (no 6px labels on a phone; the chart's box scrolls sideways instead)."""
    style = f"max-width:{width}px;min-width:{round(width * MIN_SCALE)}px"
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" style="{style}" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"{''.join(body)}</svg>"
    )


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values covering ``[lo, hi]``."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    count = math.ceil((hi - start) / step - 1e-9)
    return [start + i * step for i in range(count + 1)]


def fmt_num(v: float) -> str:
    """Compact axis label: 12, 1.5k, 2M, 0.003."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a == 0 or a >= 1:
        return f"{v:.4g}"
    return f"{v:.{1 - math.floor(math.log10(a))}f}".rstrip("0")  # 0.00005, never 5e-05


def _axes(
    xt: list[float], yt: list[float], sx: Any, sy: Any, w: int, h: int, x_label: str, y_label: str
) -> list[str]:
    out = []
    for y in yt:
        out.append(
            f'<line class="grid" x1="{PAD_L}" x2="{w - PAD_R}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
            f'<text class="tick" x="{PAD_L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">'
            f"{escape(fmt_num(y))}</text>"
        )
    for x in xt:
        out.append(
            f'<text class="tick" x="{sx(x):.1f}" y="{h - PAD_B + 16}" text-anchor="middle">'
            f"{escape(fmt_num(x))}</text>"
        )
    out.append(
        f'<line class="axis" x1="{PAD_L}" x2="{w - PAD_R}" y1="{h - PAD_B}" y2="{h - PAD_B}"/>'
        f'<text class="axis-label" x="{(PAD_L + w - PAD_R) / 2}" y="{h - 6}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="axis-label" transform="translate(14 {(PAD_T + h - PAD_B) / 2}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_label)}</text>'
    )
    return out


def _legend(names: Sequence[str], colors: Sequence[str], w: int) -> list[str]:
    out, x = [], PAD_L
    for name, color in zip(names, colors, strict=True):
        out.append(
            f'<rect x="{x}" y="8" width="12" height="12" rx="2" fill="{color}"/>'
            f'<text class="legend" x="{x + 16}" y="18">{escape(name)}</text>'
        )
        x += 28 + 7 * len(name)
    return out


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    x_label: str,
    y_label: str,
    width: int = 640,
    height: int = 300,
) -> Markup:
    """Lines (with point markers and tooltips) for ``[(name, [(x, y), ...]), ...]``."""
    pts = [p for _, s in series for p in s]
    if not pts:
        return Markup("")
    xt = nice_ticks(min(p[0] for p in pts), max(p[0] for p in pts))
    yt = nice_ticks(min(0.0, min(p[1] for p in pts)), max(p[1] for p in pts))

    def sx(x: float) -> float:
        return PAD_L + (x - xt[0]) / (xt[-1] - xt[0]) * (width - PAD_L - PAD_R)

    def sy(y: float) -> float:
        return height - PAD_B - (y - yt[0]) / (yt[-1] - yt[0]) * (height - PAD_T - PAD_B)

    body = _axes(xt, yt, sx, sy, width, height, x_label, y_label)
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    for (name, s), color in zip(series, colors, strict=True):
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(s)
        )
        body.append(f'<path class="line" d="{path}" stroke="{color}"/>')
        marks = s if len(s) <= 60 else s[:: math.ceil(len(s) / 60)]
        body.extend(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"><title>'
            f"{escape(name)}: {escape(fmt_num(y))} at {escape(x_label)} {escape(fmt_num(x))}"
            "</title></circle>"
            for x, y in marks
        )
    body.extend(_legend([n for n, _ in series], colors, width))
    return _svg(width, height, body, f"{y_label} by {x_label}")


def histogram_chart(
    edges: Sequence[float],
    series: dict[str, Sequence[int]],
    *,
    x_label: str,
    overflow: bool = False,
    width: int = 420,
    height: int = 240,
) -> Markup:
    """Bars of counts per bin; several series are drawn side by side within each bin."""
    if not edges or not series:
        return Markup("")
    n = len(edges) - 1
    yt = nice_ticks(0, max(max(c) for c in series.values()) or 1, 4)
    bw = (width - PAD_L - PAD_R) / n / len(series)

    def sx(x: float) -> float:
        return PAD_L + (x - edges[0]) / (edges[-1] - edges[0]) * (width - PAD_L - PAD_R)

    def sy(y: float) -> float:
        return height - PAD_B - y / yt[-1] * (height - PAD_T - PAD_B)

    xt = list(edges[:: max(1, math.ceil(n / 6))])
    body = _axes(xt, yt, sx, sy, width, height, x_label, "rows")
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(series))]
    for k, ((name, counts), color) in enumerate(zip(series.items(), colors, strict=True)):
        for i, c in enumerate(counts):
            lo, hi = edges[i], edges[i + 1]
            rng = (
                f"{fmt_num(lo)}+" if overflow and i == n - 1 else f"{fmt_num(lo)}–{fmt_num(hi - 1)}"
            )
            body.append(
                f'<rect x="{sx(lo) + k * bw + 0.5:.1f}" y="{sy(c):.1f}" '
                f'width="{max(bw - 1, 0.5):.1f}" height="{sy(0) - sy(c):.1f}" fill="{color}">'
                f"<title>{escape(name)}: {c} rows with {escape(rng)} words</title></rect>"
            )
    if len(series) > 1:
        body.extend(_legend(list(series), colors, width))
    return _svg(width, height, body, f"histogram of {x_label}")


def funnel_chart(funnel: dict[str, Any], *, width: int = 720) -> Markup:
    """Generated -> each filter's removals -> kept, as horizontal bars (widths to scale)."""
    steps = funnel["steps"]
    total = max(funnel["generated"], 1)
    row_h, label_w = 34, 190
    height = row_h * (len(steps) + 2) + 8
    bar_w = width - label_w - 120

    def bar(
        y: int, label: str, value: int, removed: int, color: str, tip: str, cls: str = "removed"
    ) -> str:
        w_keep, w_rm = value / total * bar_w, removed / total * bar_w
        return (
            f"<g><title>{escape(tip)}</title>"
            f'<text class="funnel-label" x="{label_w - 10}" y="{y + 21}" text-anchor="end">'
            f"{escape(_short(label, 24))}</text>"
            f'<rect x="{label_w}" y="{y + 6}" width="{w_keep:.1f}" height="{row_h - 12}" rx="3" '
            f'fill="{color}"/>'
            f'<rect class="{cls}" x="{label_w + w_keep:.1f}" y="{y + 6}" width="{w_rm:.1f}" '
            f'height="{row_h - 12}" rx="3"/>'
            f'<text class="funnel-value" x="{label_w + w_keep + w_rm + 8:.1f}" y="{y + 21}">'
            f"{escape(f'{value:,}')}{escape(f'  (−{removed:,})') if removed else ''}</text></g>"
        )

    body = [bar(4, "generated", funnel["generated"], 0, PALETTE[0], "all generated candidates")]
    for i, s in enumerate(steps, start=1):
        verb = "failed (no answer)" if s.get("failed") else "removed"
        tip = f"{s['stage']}: {verb} {s['removed']:,} of {s['reaching']:,} ({s['share']:.1%})"
        cls = "removed failed" if s.get("failed") else "removed"
        body.append(
            bar(4 + i * row_h, s["stage"], s["remaining"], s["removed"], "#9db8d6", tip, cls)
        )
    unchanged = funnel.get("unchanged") or 0
    label = f"kept ({unchanged:,} unchanged)" if unchanged else "kept"
    tip = f"kept rows; {unchanged:,} unchanged: their LLM step failed" if unchanged else "kept rows"
    body.append(bar(4 + (len(steps) + 1) * row_h, label, funnel["kept"], 0, PALETTE[4], tip))
    return _svg(width, height, body, "filter funnel")


def sunburst_chart(rows: Sequence[dict[str, Any]], *, size: int = 520) -> Markup:
    """Self-Instruct Figure 2: inner ring root verbs, outer ring their direct-object nouns.

    Args:
        rows: ``[{verb, noun, count}]`` (``top_verb_nouns``); arc angles are proportional to counts.
    """
    if not rows:
        return Markup("")
    verbs: dict[str, list[tuple[str, int]]] = {}
    for r in rows:
        verbs.setdefault(str(r["verb"]), []).append((str(r["noun"]), int(r["count"])))
    total = sum(c for nouns in verbs.values() for _, c in nouns) or 1
    c, r0, r1, r2 = size / 2, size * 0.11, size * 0.29, size * 0.48
    body, a = [], -math.pi / 2
    for i, (verb, nouns) in enumerate(verbs.items()):
        color = PALETTE[i % len(PALETTE)]
        span = sum(n for _, n in nouns) / total * 2 * math.pi
        body.append(
            _arc(c, r0, r1, a, a + span, color, verb, f"{verb}: {sum(n for _, n in nouns)}")
        )
        b = a
        for noun, n in nouns:
            step = n / total * 2 * math.pi
            body.append(_arc(c, r1, r2, b, b + step, color, noun, f"{verb} {noun}: {n}", 0.55))
            b += step
        a += span
    return _svg(size, size, body, "root verbs and their direct objects")


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _arc(
    c: float, ri: float, ro: float, a0: float, a1: float, color: str, label: str, tip: str,
    opacity: float = 0.95,
) -> str:  # fmt: skip
    a1 = min(a1, a0 + 2 * math.pi - 1e-4)
    large = 1 if a1 - a0 > math.pi else 0

    def pt(r: float, a: float) -> str:
        return f"{c + r * math.cos(a):.2f},{c + r * math.sin(a):.2f}"

    d = (
        f"M{pt(ro, a0)} A{ro:.2f},{ro:.2f} 0 {large} 1 {pt(ro, a1)} "
        f"L{pt(ri, a1)} A{ri:.2f},{ri:.2f} 0 {large} 0 {pt(ri, a0)} Z"
    )
    out = f'<path class="arc" d="{d}" fill="{color}" fill-opacity="{opacity}"><title>{escape(tip)}</title></path>'
    # A radial label when the arc is wide enough to hold one line of text.
    if (a1 - a0) * (ri + ro) / 2 >= 11:
        mid = (a0 + a1) / 2
        deg = math.degrees(mid) % 360
        flip = 90 < deg < 270
        rm = (ri + ro) / 2
        x, y = c + rm * math.cos(mid), c + rm * math.sin(mid)
        rot = deg + 180 if flip else deg
        text = _short(label, 14)
        out += (
            f'<text class="arc-label" x="{x:.2f}" y="{y:.2f}" text-anchor="middle" '
            f'dominant-baseline="central" transform="rotate({rot:.1f} {x:.2f} {y:.2f})">'
            f"{escape(text)}</text>"
        )
    return out

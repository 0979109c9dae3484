"""The demo's HTML report: one self-contained page (inline CSS and SVG, nothing fetched), funnel and latencies."""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from switchboard._demo_report import FUNNEL_COLUMNS, Funnel, template_totals

__all__ = ["LATENCY_BOUNDS_MS", "ReportPage", "histogram", "render_report"]

# Upper bounds of the latency chart's buckets, in ms (the last bucket is open-ended), as the API's histograms.
LATENCY_BOUNDS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000)
_FUNNEL_BARS = ("requested", "accepted", "sent", "delivered", "read")
_SIDE_BARS = ("suppressed", "deferred", "failed", "fell_back", "dead_lettered", "expired")
_COLOURS = {"requested": "#4c6ef5", "accepted": "#228be6", "sent": "#1c7ed6", "delivered": "#15aabf", "read": "#12b886",
            "suppressed": "#fab005", "deferred": "#fd7e14", "failed": "#fa5252", "fell_back": "#be4bdb",
            "dead_lettered": "#868e96", "expired": "#adb5bd"}
_NAMES = {"-": "—"}  # no template (free text) or no channel yet (before routing)
_STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#212529;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em}table{border-collapse:collapse;margin:.5em 0}
td,th{padding:.25em .6em;border-bottom:1px solid #dee2e6;text-align:right}td:first-child,th:first-child,
td:nth-child(2),th:nth-child(2){text-align:left}tr.total td{font-weight:600}svg text{font:12px system-ui,sans-serif}
.note{color:#495057}code{background:#f1f3f5;padding:0 .2em}"""


@dataclass(frozen=True)
class ReportPage:
    """What the page shows: the run, the funnel (template -> channel -> stage -> count), latency samples per span,
    notes (segments, faults, the API's check) and where the console is."""

    run_id: str
    title: str
    funnel: Funnel
    latencies: Mapping[str, Sequence[float]]
    notes: Sequence[str]
    console: str
    messages: Sequence[str] = ()  # the transactional messages' table, as printed (phones masked)


def histogram(samples: Sequence[float], bounds: Sequence[int] = LATENCY_BOUNDS_MS) -> list[int]:
    """Counts per bucket: (0, b0], (b0, b1], ..., and (b_last, inf)."""
    counts = [0] * (len(bounds) + 1)
    for value in samples:
        counts[bisect.bisect_left(bounds, value)] += 1
    return counts


def render_report(page: ReportPage) -> str:
    """The whole HTML document."""
    totals = template_totals(page.funnel)
    overall: dict[str, int] = {}
    for counts in totals.values():
        for stage, count in counts.items():
            overall[stage] = overall.get(stage, 0) + count
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(page.title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{escape(page.title)}</h1>",
             f"<p class=note>Run <code>{escape(page.run_id)}</code>. {escape(page.console)}</p>",
             "<h2>Funnel</h2>", _funnel_svg(overall), _table(page.funnel, totals),
             "<h2>Latency distribution</h2>",
             "<p class=note>From our clock to the millisecond for requests and acceptances, from the provider's "
             "to the second for receipts: a receipt within a second of its acceptance counts as 0 ms.</p>",
             *(_latency_svg(span, samples) for span, samples in page.latencies.items()),
             "<h2>Notes</h2><ul>", *(f"<li>{escape(note)}</li>" for note in page.notes), "</ul>",
             *(["<h2>Transactional messages</h2><pre>", escape("\n".join(page.messages)), "</pre>"]
               if page.messages else []), "</body></html>"]
    return "\n".join(parts) + "\n"


def _funnel_svg(overall: Mapping[str, int]) -> str:
    """Horizontal bars: the main funnel, then what left it or took a detour."""
    stages = [*_FUNNEL_BARS, *_SIDE_BARS]
    top = max([overall.get(stage, 0) for stage in stages] + [1])
    height, width, label = 26, 560, 120
    rows = []
    for index, stage in enumerate(stages):
        value = overall.get(stage, 0)
        y = index * height + (12 if stage in _SIDE_BARS else 0)
        bar = round(width * value / top)
        rows.append(f'<text x="{label - 8}" y="{y + 17}" text-anchor="end">{stage.replace("_", " ")}</text>'
                    f'<rect x="{label}" y="{y + 4}" width="{bar}" height="{height - 8}" fill="{_COLOURS[stage]}">'
                    f'<title>{stage}: {value}</title></rect>'
                    f'<text x="{label + bar + 6}" y="{y + 17}" data-stage="{stage}">{value:,}</text>')
    total_height = len(stages) * height + 16
    return (f'<svg id="funnel" role="img" aria-label="funnel" width="{label + width + 90}" height="{total_height}" '
            f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>')


def _table(funnel: Funnel, totals: Mapping[str, Mapping[str, int]]) -> str:
    head = "".join(f"<th>{escape(heading)}</th>" for _, heading in FUNNEL_COLUMNS)
    rows = [f"<table id=funnel-table><tr><th>template</th><th>channel</th>{head}</tr>"]
    for template in sorted(funnel):
        rows.append(_row(template, "all", totals[template], "total"))
        for channel in sorted(funnel[template]):
            rows.append(_row(template, channel, funnel[template][channel], "channel"))
    rows.append("</table>")
    return "".join(rows)


def _row(template: str, channel: str, counts: Mapping[str, int], kind: str) -> str:
    cells = "".join(f"<td data-stage={stage}>{counts.get(stage, 0)}</td>" for stage, _ in FUNNEL_COLUMNS)
    return (f"<tr class={kind} data-template=\"{escape(template)}\" data-channel=\"{escape(channel)}\">"
            f"<td>{escape(_NAMES.get(template, template)) if kind == 'total' else ''}</td>"
            f"<td>{escape(_NAMES.get(channel, channel))}</td>"
            f"{cells}</tr>")


def _latency_svg(span: str, samples: Sequence[float]) -> str:
    """One histogram: a bar per bucket, its upper bound below it; the median and p99 in the caption."""
    counts = histogram(samples)
    top = max([*counts, 1])
    bar, gap, plot = 48, 6, 140
    labels = [_ms(b) for b in LATENCY_BOUNDS_MS] + [f">{_ms(LATENCY_BOUNDS_MS[-1])}"]
    rects = []
    for index, count in enumerate(counts):
        x, h = index * (bar + gap), round(plot * count / top)
        rects.append(f'<rect x="{x}" y="{plot - h + 14}" width="{bar}" height="{h}" fill="#228be6">'
                     f'<title>≤ {labels[index]}: {count}</title></rect>'
                     f'<text x="{x + bar / 2}" y="{plot - h + 10}" text-anchor="middle">{count or ""}</text>'
                     f'<text x="{x + bar / 2}" y="{plot + 30}" text-anchor="middle">{labels[index]}</text>')
    caption = f"{span.replace('_', ' ')}: {len(samples):,} messages"
    if samples:
        ordered = sorted(samples)
        caption += (f", median {_ms(ordered[len(ordered) // 2])}, "
                    f"p99 {_ms(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))])}")
    width = len(counts) * (bar + gap)
    return (f"<figure><svg role=img aria-label=\"{escape(span)}\" width=\"{width}\" height=\"{plot + 40}\" "
            f"xmlns=\"http://www.w3.org/2000/svg\">{''.join(rects)}</svg>"
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _ms(value: float) -> str:
    """Three significant digits at most: 45.2 s, 1.56 min."""
    if value >= 60_000:
        return f"{value / 60_000:.3g} min"
    return f"{value / 1000:.3g} s" if value >= 1000 else f"{value:.0f} ms"

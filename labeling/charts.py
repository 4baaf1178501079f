"""A small server-rendered SVG bar chart (no JS library): the labels' delay-bucket distribution."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

BAR_WIDTH = 64
GAP = 16
PLOT_HEIGHT = 120
TOP = 22  # room for the count above the tallest bar
BOTTOM = 34  # room for the bucket names


def bar_chart_svg(counts: Sequence[tuple[str, int]], *, title: str) -> SafeString:
    """One bar per ``(name, count)``, heights scaled to the largest count; every text escaped.

    Each bar carries ``data-bucket`` and ``data-count`` so tests and scripts read the numbers
    back without parsing geometry.
    """
    largest = max((count for _, count in counts), default=0)
    width = GAP + len(counts) * (BAR_WIDTH + GAP)
    height = TOP + PLOT_HEIGHT + BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bucket-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="0" y1="{TOP + PLOT_HEIGHT}" x2="{width}" y2="{TOP + PLOT_HEIGHT}" stroke="#888"/>',
    ]
    for index, (name, count) in enumerate(counts):
        x = GAP + index * (BAR_WIDTH + GAP)
        bar = round(PLOT_HEIGHT * count / largest) if largest else 0
        y = TOP + PLOT_HEIGHT - bar
        center = x + BAR_WIDTH // 2
        parts.append(
            f'<g class="bar" data-bucket="{escape(name)}" data-count="{count}">'
            f'<rect x="{x}" y="{y}" width="{BAR_WIDTH}" height="{bar}" fill="#4a7bd0"/>'
            f'<text x="{center}" y="{y - 6}" text-anchor="middle" font-size="12">{count}</text>'
            f'<text x="{center}" y="{TOP + PLOT_HEIGHT + 18}" text-anchor="middle" font-size="11">'
            f"{escape(name)}</text></g>"
        )
    parts.append("</svg>")
    # Every interpolated text above went through escape(); the rest is our own markup.
    return mark_safe("".join(parts))

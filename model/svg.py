"""Small SVG charts (axes, ticks, grid, legend, lines, points, bars, reference lines), standard library only.

A `Chart` is one panel in data coordinates; `save` writes one or more panels side by side as an SVG
file. Every mark carries a class (`line`, `point`, `bar`, `reference`) and its data in `data-*`
attributes, so a test can read back what a chart shows. The output depends on the data only (no
ids from the clock or a hash), so a regenerated image changes only when its figures do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

BLUE, ORANGE, GREEN, RED, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"
BROWN, GREY, LIGHT_GREY = "#8c564b", "#7f7f7f", "#d3d3d3"
PALETTE = (BLUE, ORANGE, GREEN, RED, PURPLE, BROWN, GREY)
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
CHAR_PX = 6.4  # about the width of an 11 px character: sizes the legend and the category labels
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 34.0, 16.0, 34.0, 48.0
"""Pixels around the plot area; on the left, the y axis's label, and its tick labels take what they need."""


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round values (1, 2, 2.5 or 5 times a power of ten apart) from low to high, about `count` of them."""
    if not high > low:
        return [low]
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)
    first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _px(value: float) -> str:
    """A coordinate to 0.1 px: finer than any screen, and the file stays small."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _tick_label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


@dataclass(frozen=True)
class Line:
    x: list[float]
    y: list[float]
    color: str
    label: str | None
    width: float
    opacity: float


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    color: str
    label: str | None


@dataclass(frozen=True)
class Reference:
    x: float | None
    y: float | None
    color: str
    label: str | None
    dashed: bool


@dataclass(frozen=True)
class Bars:
    values: list[float]
    base: list[float]
    edges: list[float] | None
    color: str
    label: str | None


Mark = Line | Point | Reference | Bars


@dataclass(frozen=True)
class _Frame:
    """Where the plot area sits on the page and which data ranges it shows."""

    left: float
    top: float
    width: float
    height: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.left + (value - low) / (high - low) * self.width

    def y(self, value: float) -> float:
        low, high = self.y_range
        return self.top + self.height - (value - low) / (high - low) * self.height


@dataclass
class Chart:
    """One panel: title, axis labels (with units), limits, and marks in data coordinates.

    With `categories` the x axis (with `horizontal=True` the y axis) is a row of named slots for bars.
    Limits left as None cover the data, from 0 where there are bars.
    """

    title: str
    x_label: str
    y_label: str
    width: float = 640.0
    height: float = 440.0
    x_limits: tuple[float, float] | None = None
    y_limits: tuple[float, float] | None = None
    categories: Sequence[str] = ()
    horizontal: bool = False
    grid: str = "both"
    legend_at: str = "upper right"
    marks: list[Mark] = field(default_factory=list)

    def line(
        self,
        x: Iterable[float],
        y: Iterable[float],
        *,
        color: str,
        label: str | None = None,
        width: float = 1.5,
        opacity: float = 1.0,
    ) -> None:
        """A polyline through the (x, y) points; one that lands on the same 0.1 px as the one before is drawn once.

        A point with a coordinate that is not finite (NaN: no value there) breaks the line in two, as a gap.
        """
        self.marks.append(Line([float(v) for v in x], [float(v) for v in y], color, label, width, opacity))

    def point(self, x: float, y: float, *, color: str, label: str | None = None) -> None:
        """One marked point, e.g. where a threshold operates."""
        self.marks.append(Point(float(x), float(y), color, label))

    def reference(
        self, *, x: float | None = None, y: float | None = None, color: str, label: str | None, dashed: bool = True
    ) -> None:
        """A vertical (x=) or horizontal (y=) line across the panel, dashed by default: a threshold, a baseline."""
        self.marks.append(Reference(x, y, color, label, dashed))

    def bars(
        self,
        values: Iterable[float],
        *,
        color: str,
        label: str | None = None,
        base: Iterable[float] | None = None,
        edges: Iterable[float] | None = None,
    ) -> None:
        """One bar per category, or per bin between consecutive `edges`, from `base` (stacking) or from 0."""
        lengths = [float(v) for v in values]
        bottoms = [0.0] * len(lengths) if base is None else [float(v) for v in base]
        bins = None if edges is None else [float(v) for v in edges]
        self.marks.append(Bars(lengths, bottoms, bins, color, label))

    def svg(self, left: float, top: float, clip_id: str) -> list[str]:
        """This panel as SVG elements, its top left corner at (left, top)."""
        y_range = self._limits(vertical=True)
        label_room = 10 + CHAR_PX * max(len(text) for _, text in self._ticks(y_range, vertical=True))
        plot_left = left + MARGIN_LEFT + label_room
        frame = _Frame(
            left=plot_left,
            top=top + MARGIN_TOP,
            width=left + self.width - MARGIN_RIGHT - plot_left,
            height=self.height - MARGIN_TOP - MARGIN_BOTTOM,
            x_range=self._limits(vertical=False),
            y_range=y_range,
        )
        area = f'x="{_px(frame.left)}" y="{_px(frame.top)}" width="{_px(frame.width)}" height="{_px(frame.height)}"'
        out = [f'<g class="chart" data-title={quoteattr(self.title)}>', f'<rect {area} fill="white"/>']
        out += self._axes(frame, label_room)
        out += [f'<clipPath id="{clip_id}"><rect {area}/></clipPath>', f'<g clip-path="url(#{clip_id})">']
        for mark in self.marks:
            out += _draw(mark, frame, self.horizontal)
        out += ["</g>", f'<rect {area} fill="none" stroke="#333333"/>']
        out += self._legend(frame)
        out.append(
            f'<text class="title" x="{_px(left + self.width / 2)}" y="{_px(top + 21)}" text-anchor="middle"'
            f' font-size="14">{escape(self.title)}</text>'
        )
        out.append("</g>")
        return out

    def _limits(self, *, vertical: bool) -> tuple[float, float]:
        fixed = self.y_limits if vertical else self.x_limits
        if fixed is not None:
            return fixed
        if self._categorical(vertical=vertical):
            return -0.5, len(self.categories) - 0.5
        values: list[float] = []
        for mark in self.marks:
            if isinstance(mark, Bars):
                if vertical != self.horizontal:  # the axis the bars' lengths run along
                    values += [0.0, *(b + v for b, v in zip(mark.base, mark.values, strict=True))]
                else:
                    values += mark.edges or []
            elif isinstance(mark, Line):
                values += [y if vertical else x for x, y in _finite(mark)]
            elif isinstance(mark, Point):
                values.append(mark.y if vertical else mark.x)
            elif (coordinate := mark.y if vertical else mark.x) is not None:
                values.append(coordinate)
        values = [value for value in values if math.isfinite(value)]
        if not values:
            return 0.0, 1.0
        low, high = min(values), max(values)
        high = high + 0.05 * (high - low) if high > low else low + 1.0
        ticks = nice_ticks(low, high)
        return min(low, ticks[0]), max(high, ticks[-1])

    def _categorical(self, *, vertical: bool) -> bool:
        return bool(self.categories) and vertical == self.horizontal

    def _ticks(self, limits: tuple[float, float], *, vertical: bool) -> list[tuple[float, str]]:
        if self._categorical(vertical=vertical):
            return [(float(i), name) for i, name in enumerate(self.categories)]
        low, high = limits
        return [(value, _tick_label(value)) for value in nice_ticks(low, high) if low <= value <= high]

    def _axes(self, frame: _Frame, label_room: float) -> list[str]:
        out = []
        for vertical in (False, True):
            gridded = self.grid in {"both", "y" if vertical else "x"} and not self._categorical(vertical=vertical)
            for value, text in self._ticks(frame.y_range if vertical else frame.x_range, vertical=vertical):
                if vertical:
                    y = _px(frame.y(value))
                    grid = f'x1="{_px(frame.left)}" y1="{y}" x2="{_px(frame.left + frame.width)}" y2="{y}"'
                    tick = f'x="{_px(frame.left - 6)}" y="{y}" text-anchor="end" dominant-baseline="middle"'
                else:
                    x = _px(frame.x(value))
                    grid = f'x1="{x}" y1="{_px(frame.top)}" x2="{x}" y2="{_px(frame.top + frame.height)}"'
                    tick = f'x="{x}" y="{_px(frame.top + frame.height + 16)}" text-anchor="middle"'
                if gridded:
                    out.append(f'<line class="grid" {grid} stroke="#e0e0e0"/>')
                out.append(f'<text class="tick" {tick} font-size="11">{escape(text)}</text>')
        x_label_y = frame.top + frame.height + 38
        y_label_x = frame.left - label_room - 14
        out.append(
            f'<text class="axis-label" x="{_px(frame.left + frame.width / 2)}" y="{_px(x_label_y)}"'
            f' text-anchor="middle" font-size="12">{escape(self.x_label)}</text>'
        )
        out.append(
            f'<text class="axis-label" transform="translate({_px(y_label_x)} {_px(frame.top + frame.height / 2)})'
            f' rotate(-90)" text-anchor="middle" font-size="12">{escape(self.y_label)}</text>'
        )
        return out

    def _legend(self, frame: _Frame) -> list[str]:
        entries: dict[str, Mark] = {}
        for mark in self.marks:
            if mark.label and mark.label not in entries:
                entries[mark.label] = mark
        if not entries:
            return []
        box_width = 36 + CHAR_PX * max(len(label) for label in entries)
        box_height = 8 + 18 * len(entries)
        x = frame.left + 8 if "left" in self.legend_at else frame.left + frame.width - box_width - 8
        y = frame.top + 8 if "upper" in self.legend_at else frame.top + frame.height - box_height - 8
        out = [
            '<g class="legend">',
            f'<rect x="{_px(x)}" y="{_px(y)}" width="{_px(box_width)}" height="{_px(box_height)}" fill="white"'
            ' fill-opacity="0.9" stroke="#cccccc"/>',
        ]
        for i, (label, mark) in enumerate(entries.items()):
            row = y + 13 + 18 * i
            if isinstance(mark, Bars):
                out.append(f'<rect x="{_px(x + 6)}" y="{_px(row - 5)}" width="18" height="10" fill="{mark.color}"/>')
            elif isinstance(mark, Point):
                out.append(f'<circle cx="{_px(x + 15)}" cy="{_px(row)}" r="4.5" fill="{mark.color}"/>')
            else:
                dash = ' stroke-dasharray="6 4"' if isinstance(mark, Reference) and mark.dashed else ""
                opacity = f' stroke-opacity="{max(mark.opacity, 0.3):g}"' if isinstance(mark, Line) else ""
                out.append(
                    f'<line x1="{_px(x + 4)}" y1="{_px(row)}" x2="{_px(x + 26)}" y2="{_px(row)}" stroke="{mark.color}"'
                    f' stroke-width="2"{dash}{opacity}/>'
                )
            out.append(
                f'<text x="{_px(x + 32)}" y="{_px(row)}" dominant-baseline="middle" font-size="11">'
                f"{escape(label)}</text>"
            )
        out.append("</g>")
        return out


def _finite(line: Line) -> list[tuple[float, float]]:
    return [(x, y) for x, y in zip(line.x, line.y, strict=True) if math.isfinite(x) and math.isfinite(y)]


def _segments(line: Line) -> list[list[tuple[float, float]]]:
    """The line's runs of finite points: a point that is not finite ends one run."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in zip(line.x, line.y, strict=True):
        if math.isfinite(x) and math.isfinite(y):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def _draw(mark: Mark, frame: _Frame, horizontal: bool) -> list[str]:
    if isinstance(mark, Line):
        lines = []
        for run in _segments(mark):
            points: list[str] = []
            for x, y in run:
                point = f"{_px(frame.x(x))},{_px(frame.y(y))}"
                if not points or points[-1] != point:
                    points.append(point)
            lines.append(
                f'<polyline class="line" data-label={quoteattr(mark.label or "")} fill="none" stroke="{mark.color}"'
                f' stroke-width="{mark.width:g}" stroke-opacity="{mark.opacity:g}" stroke-linejoin="round"'
                f' points="{" ".join(points)}"/>'
            )
        return lines
    if isinstance(mark, Point):
        if not (math.isfinite(mark.x) and math.isfinite(mark.y)):
            return []
        return [
            f'<circle class="point" data-x="{mark.x:g}" data-y="{mark.y:g}" cx="{_px(frame.x(mark.x))}"'
            f' cy="{_px(frame.y(mark.y))}" r="4.5" fill="{mark.color}"/>'
        ]
    if isinstance(mark, Reference):
        if mark.x is not None:
            value, at = mark.x, _px(frame.x(mark.x))
            ends = f'x1="{at}" y1="{_px(frame.top)}" x2="{at}" y2="{_px(frame.top + frame.height)}"'
        else:
            value = mark.y or 0.0
            at = _px(frame.y(value))
            ends = f'x1="{_px(frame.left)}" y1="{at}" x2="{_px(frame.left + frame.width)}" y2="{at}"'
        dash = ' stroke-dasharray="6 4"' if mark.dashed else ""
        return [
            f'<line class="reference" data-value="{value:g}" {ends} stroke="{mark.color}" stroke-width="1.5"{dash}/>'
        ]
    rects = []
    for i, (value, base) in enumerate(zip(mark.values, mark.base, strict=True)):
        if value == 0 or not (math.isfinite(value) and math.isfinite(base)):
            continue
        start, end = (mark.edges[i], mark.edges[i + 1]) if mark.edges is not None else (i - 0.4, i + 0.4)
        if horizontal:
            x0, x1, y0, y1 = frame.x(base), frame.x(base + value), frame.y(start), frame.y(end)
        else:
            x0, x1, y0, y1 = frame.x(start), frame.x(end), frame.y(base), frame.y(base + value)
        rects.append(
            f'<rect class="bar" data-value="{value:g}" x="{_px(min(x0, x1))}" y="{_px(min(y0, y1))}"'
            f' width="{_px(abs(x1 - x0))}" height="{_px(abs(y1 - y0))}" fill="{mark.color}" stroke="white"'
            ' stroke-width="0.5"/>'
        )
    return rects


def save(path: Path, *charts: Chart) -> Path:
    """Write the charts side by side, left to right, as one SVG file."""
    width = sum(chart.width for chart in charts)
    height = max(chart.height for chart in charts)
    body: list[str] = []
    left = 0.0
    for number, chart in enumerate(charts):
        body += chart.svg(left=left, top=0.0, clip_id=f"plot-area-{number}")
        left += chart.width
    document = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_px(width)}" height="{_px(height)}"'
        f' viewBox="0 0 {_px(width)} {_px(height)}" font-family="{FONT}">',
        f"<title>{escape('; '.join(chart.title for chart in charts))}</title>",
        f'<rect width="{_px(width)}" height="{_px(height)}" fill="white"/>',
        *body,
        "</svg>",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(document) + "\n", encoding="utf-8")
    return path

// Time-series charts with uPlot (web/vendor/uplot): one per quantity, alarm transitions drawn as vertical lines.

const MARK_COLOR = { ACTIVE: "#cf222e", LATCHED: "#bc4c00", ACKNOWLEDGED: "#9a6700", SNOOZED: "#6639ba", DISABLED: "#57606a", NORMAL: "#1a7f37" };
const LINE_COLOR = "#0b5cad";
const HEIGHT = 180;

/**
 * Draws (or updates) the charts in `container`, one per entry of `series`:
 * {key, title, unit, times (epoch s), values, range?: [min, max], thresholds?: [{value, label}]}.
 * `marks` are the alarm transitions: {time (epoch s), state, label}.
 */
export function drawCharts(container, series, marks) {
  const charts = container.charts || (container.charts = new Map());
  const wanted = new Set(series.map((one) => one.key));
  for (const [key, chart] of charts) {
    if (!wanted.has(key)) {
      chart.plot.destroy();
      chart.figure.remove();
      charts.delete(key);
    }
  }
  for (const one of series) {
    const data = [one.times, one.values, ...(one.thresholds || []).map((t) => one.times.map(() => t.value))];
    let chart = charts.get(one.key);
    if (!chart) {
      chart = create(container, one, data);
      charts.set(one.key, chart);
    } else {
      chart.plot.setData(data);
    }
    chart.marks.length = 0;
    chart.marks.push(...marks);
    chart.plot.redraw(false);
    chart.figure.setAttribute("aria-label", describe(one, marks));
  }
}

function create(container, one, data) {
  const figure = document.createElement("figure");
  figure.className = "chart";
  figure.setAttribute("role", "img");
  figure.dataset.chart = one.key;
  const title = document.createElement("h3");
  title.textContent = one.unit ? `${one.title} (${one.unit})` : one.title;
  figure.append(title);
  container.append(figure);
  const marks = [];
  const options = {
    width: width(figure),
    height: HEIGHT,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: one.range ? { range: one.range } : {} },
    series: [
      {},
      { label: one.title, stroke: LINE_COLOR, width: 2, spanGaps: false },
      ...(one.thresholds || []).map((t) => ({ label: t.label, stroke: "#8c959f", width: 1, dash: [6, 4], points: { show: false } })),
    ],
    axes: [{}, { size: 56 }],
    hooks: { draw: [(plot) => drawMarks(plot, marks)] },
  };
  const plot = new window.uPlot(options, data, figure);
  // The figure's width is the grid's to set (never the canvas's), so following it cannot loop.
  const resize = new ResizeObserver(() => plot.setSize({ width: width(figure), height: HEIGHT }));
  resize.observe(figure);
  return { plot, figure, marks };
}

/** The plot's width: the figure's, less its padding. */
function width(figure) {
  return Math.max(200, figure.clientWidth - 14);
}

function drawMarks(plot, marks) {
  const { ctx, bbox } = plot;
  const ratio = window.devicePixelRatio || 1;
  for (const mark of marks) {
    const x = Math.round(plot.valToPos(mark.time, "x", true));
    if (x < bbox.left || x > bbox.left + bbox.width) continue;
    ctx.save();
    ctx.strokeStyle = MARK_COLOR[mark.state] || "#57606a";
    ctx.lineWidth = 2 * ratio;
    ctx.setLineDash([4 * ratio, 3 * ratio]);
    ctx.beginPath();
    ctx.moveTo(x, bbox.top);
    ctx.lineTo(x, bbox.top + bbox.height);
    ctx.stroke();
    ctx.restore();
  }
}

/** The chart in words, for screen readers: its span, first and last values, and the transitions in it. */
function describe(one, marks) {
  const values = one.values.filter((v) => typeof v === "number");
  if (!values.length) return `${one.title}: no data in this period`;
  const format = (v) => (one.unit === "%" ? `${Math.round(v)} %` : `${v.toFixed(1)}${one.unit ? " " + one.unit : ""}`);
  const span = `${one.title}: from ${format(values[0])} to ${format(values[values.length - 1])}`;
  return marks.length ? `${span}; ${marks.length} alarm transitions marked` : span;
}

// A gauge's recent series as an SVG line, with its Waspada / Siaga / Awas bands.
import { wita } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const BAND_COLOURS = { waspada: "#f6e27a", siaga: "#f5a54a", awas: "#e8685f" };

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export function drawSeries(series, t) {
  const width = 340, height = 200, left = 40, right = 6, top = 8, bottom = 22;
  const levels = Object.entries(series.thresholds).sort((a, b) => a[1] - b[1]);
  const values = series.points.map((p) => p[1]).concat(levels.map((l) => l[1]));
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-label": `${series.field} ${series.points.length ? series.points[series.points.length - 1][1] : "–"} ${series.unit}` });
  if (!values.length) {
    svg.append(el("text", { x: 10, y: 100, class: "axis" }, "–"));
    return svg;
  }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.1;
  lo -= pad; hi += pad;
  const since = new Date(series.since).getTime(), until = new Date(series.until).getTime();
  const x = (ts) => left + ((new Date(ts).getTime() - since) / (until - since)) * (width - left - right);
  const y = (v) => top + (1 - (v - lo) / (hi - lo)) * (height - top - bottom);
  levels.forEach(([name, value], i) => {
    const upper = i + 1 < levels.length ? levels[i + 1][1] : hi;
    svg.append(el("rect", { x: left, y: y(Math.min(upper, hi)), width: width - left - right,
      height: Math.max(0, y(value) - y(Math.min(upper, hi))), fill: BAND_COLOURS[name] || "#ddd", opacity: 0.45 }));
    svg.append(el("text", { x: width - right - 2, y: y(value) - 2, "text-anchor": "end", class: "axis" }, t(name)));
  });
  svg.append(el("text", { x: 2, y: top + 8, class: "axis" }, `${Math.round(hi)}`));
  svg.append(el("text", { x: 2, y: height - bottom, class: "axis" }, `${Math.round(lo)}`));
  svg.append(el("text", { x: left, y: height - 4, class: "axis" }, wita(series.since)));
  if (series.points.length) {
    const d = series.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ");
    svg.append(el("path", { d, fill: "none", stroke: "#0b4f8a", "stroke-width": 2 }));
    const [lastTs, lastValue] = series.points[series.points.length - 1];
    svg.append(el("circle", { cx: x(lastTs), cy: y(lastValue), r: 3, fill: "#0b4f8a", class: "last" }));
  }
  return svg;
}

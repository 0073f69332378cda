// An offline map of Luwu Timur: coast, lakes, rivers and towns from luwu-timur.json (shipped
// with the console), and the devices at their coordinates. No tile server.
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

export function drawMap(geo, devices, t) {
  const { west, east, south, north } = geo.bounds;
  const width = 340;
  const height = Math.round(width * ((north - south) / (east - west)));
  const x = (lon) => ((lon - west) / (east - west)) * width;
  const y = (lat) => ((north - lat) / (north - south)) * height;
  const path = (points, close) => points.map(([lon, lat], i) => `${i ? "L" : "M"}${x(lon).toFixed(1)},${y(lat).toFixed(1)}`).join(" ") + (close ? " Z" : "");
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "map-svg", "aria-label": `${t("map")}: Luwu Timur, ${devices.length} ${t("devices")}` });
  const sea = [...geo.coast, [east, south], [west, south]];
  svg.append(el("rect", { x: 0, y: 0, width, height, fill: "#eef3e6" }));
  svg.append(el("path", { d: path(sea, true), fill: "#b8d4ee" }));
  for (const lake of geo.lakes) {
    svg.append(el("path", { d: path(lake.outline, true), fill: "#b8d4ee", stroke: "#6d9cc7" }));
    const [lon, lat] = lake.outline[0];
    svg.append(el("text", { x: x(lon), y: y(lat) - 3, class: "map-label" }, lake.name));
  }
  for (const river of geo.rivers) svg.append(el("path", { d: path(river.path, false), fill: "none", stroke: "#4f86c6", "stroke-width": 1.5 }));
  for (const town of geo.towns) {
    svg.append(el("circle", { cx: x(town.lon), cy: y(town.lat), r: 3, fill: "#333" }));
    svg.append(el("text", { x: x(town.lon) + 4, y: y(town.lat) - 4, class: "map-label" }, town.name));
  }
  for (const device of devices) {
    if (device.latitude === null || device.longitude === null) continue;
    const link = el("a", { href: `#/device/${device.id}` });
    const dot = el("circle", { cx: x(device.longitude), cy: y(device.latitude), r: 5, class: `dot ${device.status}` });
    dot.append(el("title", {}, `${device.name} (${device.id})`));
    link.append(dot);
    svg.append(link);
  }
  return svg;
}

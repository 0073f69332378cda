"""A PNG of each dashboard's layout: the 24-column panel grid with titles and panel types,
drawn from the rendered JSON (Pillow), so an operator sees what they get before deploying."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from dashboards.render import JSON_DIR, load_files

CELL_W, CELL_H, MARGIN, HEADER = 40, 26, 12, 44
COLOURS = {
    "timeseries": "#dbeafe",
    "stat": "#dcfce7",
    "bargauge": "#fef9c3",
    "table": "#f3e8ff",
    "geomap": "#cffafe",
    "row": "#e5e7eb",
}


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def draw(data: dict[str, Any]) -> Image.Image:
    panels = data.get("panels", [])
    rows = max((p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels), default=1)
    width = 24 * CELL_W + 2 * MARGIN
    height = rows * CELL_H + 2 * MARGIN + HEADER
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    pen.text((MARGIN, MARGIN), data["title"], fill="black", font=_font(20))
    small, tiny = _font(13), _font(11)
    for panel in panels:
        pos = panel["gridPos"]
        x0 = MARGIN + pos["x"] * CELL_W
        y0 = MARGIN + HEADER + pos["y"] * CELL_H
        x1, y1 = x0 + pos["w"] * CELL_W - 4, y0 + pos["h"] * CELL_H - 4
        kind = panel.get("type", "")
        pen.rectangle((x0, y0, x1, y1), fill=COLOURS.get(kind, "#f9fafb"), outline="#6b7280")
        chars = max(8, (x1 - x0) // 8)
        title = "\n".join(textwrap.wrap(panel.get("title", ""), chars)[:3])
        pen.multiline_text((x0 + 6, y0 + 4), title, fill="black", font=small)
        if kind != "row":
            note = kind + (f" · repeat per ${panel['repeat']}" if panel.get("repeat") else "")
            pen.text((x0 + 6, y1 - 16), note, fill="#4b5563", font=tiny)
    return image


def draw_all(output: Path, json_dir: Path = JSON_DIR) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in load_files(json_dir).items():
        path = output / (Path(name).stem + ".png")
        draw(data).save(path, optimize=True)
        written.append(path)
    return written

"""report.html: the report's Markdown (its tables, the verdict, both methods' samples) as one self-contained page, the
charts inlined as SVG data (no external resource: no script, stylesheet, font or image from anywhere else).

Needs the ``report`` extra (markdown-it-py); raw HTML in the Markdown is escaped, not passed through."""

from __future__ import annotations

import base64
import html
import re
import struct
from collections.abc import Sequence
from pathlib import Path

from ai_storage_orchestrator.compare.chart import ChartFile

HTML_FILE = "report.html"
_IMAGE_LINE = re.compile(r"^\s*!\[[^\]]*\]\([^)]*\)\s*$")  # the Markdown's image links: files beside it
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1250px;
       padding: 0 1em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f4f4f4; padding: 0 0.2em; }
figure { margin: 1.5em 0; }
figure img { width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; }
"""


def _body(markdown: str) -> str:
    from markdown_it import MarkdownIt

    text = "\n".join(line for line in markdown.splitlines() if not _IMAGE_LINE.match(line))
    return str(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


def _png_width(path: Path) -> int | None:
    """The width in pixels from the PNG's header: the chart is not shown wider than it was drawn."""
    head = path.read_bytes()[:24]
    return int(struct.unpack(">I", head[16:20])[0]) if head[12:16] == b"IHDR" else None


def figures(charts: Sequence[ChartFile]) -> str:
    out = ['<section id="charts">', "<h2>Charts</h2>"]
    for chart in charts:
        data = base64.b64encode(chart.svg.read_bytes()).decode("ascii")
        title = html.escape(chart.title)
        width = _png_width(chart.png)
        style = f' style="max-width: {width}px"' if width else ""
        out += [
            f'<figure id="chart-{html.escape(chart.name)}">',
            f'<img alt="{title}"{style} src="data:image/svg+xml;base64,{data}">',
            f"<figcaption>{title} ({html.escape(chart.png.name)}, {html.escape(chart.svg.name)})</figcaption>",
            "</figure>",
        ]
    out.append("</section>")
    return "\n".join(out)


def page(markdown: str, charts: Sequence[ChartFile]) -> str:
    """The page: the Markdown's head (title, settings, the summary table, the verdict), the charts, then the rest."""
    body = _body(markdown)
    title = next((line[2:].strip() for line in markdown.splitlines() if line.startswith("# ")), "AI migration report")
    cut = body.find("<h2>")
    head, rest = (body, "") if cut < 0 else (body[:cut], body[cut:])
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            head,
            figures(charts) if charts else "",
            rest,
            "</body>",
            "</html>",
            "",
        ]
    )


def write(directory: Path, markdown: str, charts: Sequence[ChartFile]) -> Path:
    path = directory / HTML_FILE
    path.write_text(page(markdown, charts), encoding="utf-8")
    return path

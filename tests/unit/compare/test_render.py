"""The matplotlib charts (PNG and SVG), report.html, the report without the `report` extra, and the render command."""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import pytest

from ai_storage_orchestrator.compare import html, render, report
from ai_storage_orchestrator.compare.chart import chart_data
from tests.unit.compare.charts_sample import DOWNTIME_REASON, comparison, document

pytestmark = pytest.mark.tools

PNG = b"\x89PNG\r\n\x1a\n"
PUBLISHED = Path(__file__).resolve().parents[3] / "docs" / "results" / "e2e-real-nodes"
NAMES = ["cpu-per-container", "memory-per-container", "timeline", "cpu-per-sample"]


def _size(png: bytes) -> tuple[int, int]:
    assert png[:8] == PNG
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_every_chart_is_a_png_and_an_svg(tmp_path: Path) -> None:
    charts = render.draw(document(), tmp_path)
    assert [c.name for c in charts] == NAMES
    for chart in charts:
        width, height = _size(chart.png.read_bytes())
        assert width >= 560
        assert height >= 300
        root = ET.parse(chart.svg).getroot()
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert float(root.attrib["width"].removesuffix("pt")) > 0
        assert float(root.attrib["height"].removesuffix("pt")) > 0
    assert _size((tmp_path / "cpu-per-sample.png").read_bytes()) == (560, 300)


def _downtime_bars(doc: dict[str, object]) -> int:
    from matplotlib.collections import Collection
    from matplotlib.colors import to_rgba

    figure = render.timeline(chart_data(doc))
    red = to_rgba(render.DOWNTIME_COLOR, 0.75)

    def rows(collection: Collection) -> Sequence[Sequence[float]]:
        return cast(Sequence[Sequence[float]], collection.get_facecolor())  # an N x 4 RGBA array at run time

    return sum(1 for c in figure.axes[0].collections if any(tuple(f) == pytest.approx(red) for f in rows(c)))


def test_the_timeline_draws_only_the_measured_downtime_and_names_the_missing_one() -> None:
    doc = document()
    assert _downtime_bars(doc) == 1  # the native's; the orchestrator's was not measured
    figure = render.timeline(chart_data(doc))
    legend = [t.get_text().replace("\n", " ") for t in figure.legends[0].get_texts()]  # long ones wrapped
    assert f"AI ORCHESTRATOR trainer downtime: not measured ({DOWNTIME_REASON})" in legend
    assert "trainer downtime (kubelet time stamps)" in legend
    doc["methods"]["native"]["trainer_downtime"]["seconds"] = None  # type: ignore[index]
    assert _downtime_bars(doc) == 0


def test_unmeasured_cpu_says_so_instead_of_drawing(tmp_path: Path) -> None:
    doc = document()
    for method in doc["methods"].values():  # type: ignore[attr-defined]
        method["measurement"].update(status="not_measured", reason="simulated nodes", samples=[], reads=[])
    data = chart_data(doc)
    figure = render.cpu_per_container(data)
    texts = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert texts == ["CPU not measured: simulated nodes"] * 2
    assert all(not ax.patches for ax in figure.axes)
    render.draw(doc, tmp_path)
    assert _size((tmp_path / "cpu-per-sample.png").read_bytes()) == (560, 300)


def test_report_write_adds_the_charts_and_html(tmp_path: Path) -> None:
    said: list[str] = []
    paths = report.write(comparison(), tmp_path, threshold=20, allow_unmeasured=False, say=said.append)
    names = [p.name for p in paths]
    assert names[:3] == ["report.json", "report.md", "report.html"]
    assert sorted(names[3:]) == sorted(f"{n}.{kind}" for n in NAMES for kind in ("png", "svg"))
    assert said == []
    markdown = (tmp_path / "report.md").read_text()
    assert "![Migration timeline](timeline.png)" in markdown
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/svg+xml;base64,") == 4
    assert "<table>" in page
    assert "timeline.png)" not in page  # the Markdown's image links are not resources of the page


def test_without_the_report_extra_the_report_is_written_and_one_line_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    said: list[str] = []
    paths = report.write(comparison(), tmp_path, threshold=20, allow_unmeasured=False, say=said.append)
    assert [p.name for p in paths] == ["report.json", "report.md"]
    assert said == [render.NEEDS_EXTRA]
    assert "`report` extra" in said[0]
    assert render.NEEDS_EXTRA in (tmp_path / "report.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]  # no image invented


def test_a_failing_chart_costs_the_charts_not_the_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(document: object, directory: Path) -> list[object]:
        raise RuntimeError("no fonts")

    monkeypatch.setattr(render, "draw", broken)
    said: list[str] = []
    paths = report.write(comparison(), tmp_path, threshold=20, allow_unmeasured=False, say=said.append)
    assert [p.name for p in paths] == ["report.json", "report.md"]
    assert said == ["charts not drawn: RuntimeError: no fonts"]
    assert json.loads((tmp_path / "report.json").read_text())["test_id"] == "cmp-charts"


def test_the_page_has_no_external_resource_and_escapes_raw_html(tmp_path: Path) -> None:
    charts = render.draw(document(), tmp_path)
    page = html.page("# T\n\n| a | b |\n|---|---|\n| <script>x</script> | 1 |\n\n![c](c.png)\n\n## Rest\n", charts)
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert 'src="c.png"' not in page
    for attribute in ("src=", "href="):
        for part in page.split(attribute)[1:]:
            assert part.startswith('"data:'), part[:40]
    assert page.index('id="charts"') < page.index("<h2>Rest</h2>")  # the charts come before the sections


def test_render_draws_the_published_run_again(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(PUBLISHED / "report.json", tmp_path / "report.json")
    shutil.copy(PUBLISHED / "report.md", tmp_path / "report.md")
    assert render.main([str(tmp_path / "report.json"), str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(tmp_path / "out" / "report.html")
    assert len(printed) == 9
    page = (tmp_path / "out" / "report.html").read_text()
    assert "RESULT: AI Orchestrator achieved 23.8% CPU reduction" in page

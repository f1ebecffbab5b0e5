"""report.html as a person opens it: Debian's chromium, headless, renders the page written by `compare` and every
chart is an image that loaded with a non-zero size. chromium comes from tools/report/install-chromium.sh (`make
test` runs it); without it the test fails (it never skips). The browser's whole process group is killed at the end,
and the test checks that none of it is left."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from ai_storage_orchestrator.compare import report
from tests.unit.compare.charts_sample import comparison

pytestmark = pytest.mark.tools

# Appended to a copy of the page (the report itself has no script): once the page has loaded, it writes what the
# browser laid out into the DOM that --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  const out = document.createElement("pre");
  out.id = "layout-probe";
  out.textContent = JSON.stringify({
    figures: [...document.querySelectorAll("#charts figure")].map((figure) => {
      const img = figure.querySelector("img"), box = img ? img.getBoundingClientRect() : null;
      return {id: figure.id, complete: !!img && img.complete, natural: img ? img.naturalWidth : 0,
              width: box ? box.width : 0, height: box ? box.height : 0};
    }),
    tables: document.querySelectorAll("table").length,
    title: document.title,
  });
  document.body.appendChild(out);
});
</script>"""


def _browser() -> str:
    for name in ("chromium", "chromium-headless-shell"):
        if path := shutil.which(name):
            return path
    pytest.fail("no chromium: run tools/report/install-chromium.sh (as root; `make test` does)")


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _kill_group(process: subprocess.Popen[str]) -> None:
    pids = _group(process.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in pids:  # wait for each to exit (pidfd: no polling, no sleep)
        try:
            handle = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            select.select([handle], [], [], 10)
        finally:
            os.close(handle)
    process.wait(timeout=10)


def test_chromium_renders_report_html_with_every_chart(tmp_path: Path) -> None:
    report.write(comparison(), tmp_path / "out", threshold=20, allow_unmeasured=False, say=lambda line: None)
    page = (tmp_path / "out" / "report.html").read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "\n</body>"))
    argv = [
        _browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
        "--virtual-time-budget=10000", "--dump-dom", probe.as_uri(),
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path
    )
    try:
        dom, errors = process.communicate(timeout=90)
    finally:
        _kill_group(process)
    assert _group(process.pid) == []  # nothing of the browser is left
    found = re.search(r'<pre id="layout-probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"the page did not load: exit {process.returncode}; {errors[-2000:]}"
    layout = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    ids = [f["id"] for f in layout["figures"]]
    assert ids == [f"chart-{n}" for n in ("cpu-per-container", "memory-per-container", "timeline", "cpu-per-sample")]
    for figure in layout["figures"]:
        assert figure["complete"], figure
        assert figure["natural"] > 0, figure  # the SVG decoded
        assert figure["width"] > 300, figure
        assert figure["height"] > 100, figure
    assert layout["tables"] >= 3  # the summary, and each method's samples
    assert layout["title"] == "AI migration comparison cmp-charts"

"""The PNG chart is a valid PNG: signature, IHDR first, every chunk's CRC, pixel data of the stated size."""

from __future__ import annotations

import struct
import zlib

import pytest

from ai_storage_orchestrator.compare.chart import PNG_SIGNATURE, axis_label, line_chart, nice_ceiling

pytestmark = pytest.mark.unit


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    assert png[:8] == PNG_SIGNATURE == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF, kind
        chunks.append((kind, data))
        offset += 12 + length
    return chunks


@pytest.mark.parametrize(
    "series",
    [
        {"NATIVE": [2400.0, 2550.5, 2300.0], "ORCHESTRATOR": [1800.0, None, 1750.0]},
        {"NATIVE": [], "ORCHESTRATOR": []},
        {"NATIVE": [0.0]},
    ],
)
def test_chart_is_a_valid_png(series: dict[str, list[float | None]]) -> None:
    png = line_chart(series, title="CPU PER SAMPLE (MILLICORES)", width=320, height=200)
    chunks = _chunks(png)
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, color, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height, depth, color, compression, filtering, interlace) == (320, 200, 8, 2, 0, 0, 0)
    raw = zlib.decompress(chunks[1][1])
    assert len(raw) == height * (1 + width * 3)
    assert all(raw[row * (1 + width * 3)] == 0 for row in range(height))  # filter type 0 on every row
    assert len(png) < 20_000


def test_lines_are_drawn_in_the_series_colours() -> None:
    png = line_chart({"NATIVE": [100.0, 200.0]}, title="T", width=200, height=120)
    raw = zlib.decompress(_chunks(png)[1][1])
    assert bytes((31, 119, 180)) in raw


def test_axis_labels_use_only_glyphs_the_font_has() -> None:
    assert [axis_label(v) for v in (0, 0.5, 1, 1250, 2500.0, 5e7, 1e8)] == [
        "0",
        "0.5",
        "1",
        "1250",
        "2500",
        "50000K",
        "100000K",
    ]


def test_nice_ceiling() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 7, 12, 2400, 2600, 50_000)] == [1, 1, 1, 10, 20, 2500, 5000, 50_000]

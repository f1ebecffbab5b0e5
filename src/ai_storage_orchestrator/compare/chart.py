"""A small PNG line chart (CPU per sample, one line per method) written with zlib and struct only."""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)
GRID: RGB = (225, 225, 225)
COLORS: tuple[RGB, ...] = ((31, 119, 180), (255, 127, 14), (44, 160, 44))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# 3x5 glyphs, one string of 3 bits per row.
_FONT: dict[str, tuple[str, ...]] = {
    "0": ("111", "101", "101", "101", "111"), "1": ("010", "110", "010", "010", "111"),
    "2": ("111", "001", "111", "100", "111"), "3": ("111", "001", "111", "001", "111"),
    "4": ("101", "101", "111", "001", "001"), "5": ("111", "100", "111", "001", "111"),
    "6": ("111", "100", "111", "101", "111"), "7": ("111", "001", "010", "010", "010"),
    "8": ("111", "101", "111", "101", "111"), "9": ("111", "101", "111", "001", "111"),
    "A": ("010", "101", "111", "101", "101"), "B": ("110", "101", "110", "101", "110"),
    "C": ("011", "100", "100", "100", "011"), "D": ("110", "101", "101", "101", "110"),
    "E": ("111", "100", "110", "100", "111"), "F": ("111", "100", "110", "100", "100"),
    "G": ("011", "100", "101", "101", "011"), "H": ("101", "101", "111", "101", "101"),
    "I": ("111", "010", "010", "010", "111"), "J": ("001", "001", "001", "101", "010"),
    "K": ("101", "101", "110", "101", "101"), "L": ("100", "100", "100", "100", "111"),
    "M": ("101", "111", "111", "101", "101"), "N": ("110", "101", "101", "101", "101"),
    "O": ("010", "101", "101", "101", "010"), "P": ("110", "101", "110", "100", "100"),
    "Q": ("010", "101", "101", "110", "011"), "R": ("110", "101", "110", "101", "101"),
    "S": ("011", "100", "010", "001", "110"), "T": ("111", "010", "010", "010", "010"),
    "U": ("101", "101", "101", "101", "111"), "V": ("101", "101", "101", "101", "010"),
    "W": ("101", "101", "111", "111", "101"), "X": ("101", "101", "010", "101", "101"),
    "Y": ("101", "101", "010", "010", "010"), "Z": ("111", "001", "010", "100", "111"),
    " ": ("000", "000", "000", "000", "000"), ":": ("000", "010", "000", "010", "000"),
    ".": ("000", "000", "000", "000", "010"), "-": ("000", "000", "111", "000", "000"),
    "(": ("001", "010", "010", "010", "001"), ")": ("100", "010", "010", "010", "100"),
    "/": ("001", "001", "010", "100", "100"), "%": ("101", "001", "010", "100", "101"),
}  # fmt: skip


class Canvas:
    def __init__(self, width: int, height: int, background: RGB = WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def set(self, x: int, y: int, color: RGB) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            offset = (y * self.width + x) * 3
            self.pixels[offset : offset + 3] = bytes(color)

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: RGB) -> None:
        for y in range(min(y0, y1), max(y0, y1) + 1):
            for x in range(min(x0, x1), max(x0, x1) + 1):
                self.set(x, y, color)

    def line(self, x0: int, y0: int, x1: int, y1: int, color: RGB, *, width: int = 1) -> None:
        """Bresenham, thickened with a square pen."""
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        error = dx + dy
        low, high = -((width - 1) // 2), width // 2
        while True:
            self.rect(x0 + low, y0 + low, x0 + high, y0 + high, color)
            if x0 == x1 and y0 == y1:
                return
            doubled = 2 * error
            if doubled >= dy:
                error += dy
                x0 += sx
            if doubled <= dx:
                error += dx
                y0 += sy

    def text(self, x: int, y: int, text: str, color: RGB = BLACK, *, scale: int = 2) -> None:
        for index, char in enumerate(text.upper()):
            glyph = _FONT.get(char, _FONT[" "])
            for row, bits in enumerate(glyph):
                for column, bit in enumerate(bits):
                    if bit == "1":
                        left, top = x + (index * 4 + column) * scale, y + row * scale
                        self.rect(left, top, left + scale - 1, top + scale - 1, color)

    def png(self) -> bytes:
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[y * stride : (y + 1) * stride]) for y in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)  # 8-bit RGB
        return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def text_width(text: str, scale: int = 2) -> int:
    return (len(text) * 4 - 1) * scale


def axis_label(value: float) -> str:
    """Digits only (the font has no "+"): ``1250``, ``0.5``, ``250K``."""
    if value >= 100_000:
        return f"{value / 1000:.0f}K"
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:g}"


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k not below ``value`` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def line_chart(
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    empty_text: str = "NO DATA",
    width: int = 560,
    height: int = 300,
) -> bytes:
    """One line per series over the sample number (a None breaks the line); axes, y ticks at 0, half, max."""
    canvas = Canvas(width, height)
    left, right, top, bottom = 64, width - 16, 44, height - 40
    canvas.text(left, 10, title)
    values = [v for points in series.values() for v in points if v is not None]
    count = max((len(points) for points in series.values()), default=0)
    top_value = nice_ceiling(max(values)) if values else 1.0
    for fraction in (0.0, 0.5, 1.0):
        y = round(bottom - fraction * (bottom - top))
        if fraction:
            canvas.line(left + 1, y, right, y, GRID)
        if values:
            label = axis_label(top_value * fraction)
            canvas.text(left - 8 - text_width(label), y - 5, label)
    canvas.line(left, top, left, bottom, BLACK, width=2)
    canvas.line(left, bottom, right, bottom, BLACK, width=2)
    canvas.text((left + right) // 2 - text_width("SAMPLE") // 2, height - 16, "SAMPLE")
    legend_x = right - sum(text_width(name) + 24 for name in series) + 10
    for index, name in enumerate(series):
        canvas.rect(legend_x, 26, legend_x + 9, 35, COLORS[index % len(COLORS)])
        canvas.text(legend_x + 14, 26, name)
        legend_x += text_width(name) + 24
    if not values:
        canvas.text((left + right) // 2 - text_width(empty_text) // 2, (top + bottom) // 2 - 5, empty_text)
        return canvas.png()
    span = max(count - 1, 1)
    for label_index in sorted({1, (count + 1) // 2, count}):
        x = round(left + (label_index - 1) / span * (right - left))
        canvas.line(x, bottom, x, bottom + 5, BLACK)
        canvas.text(x - text_width(str(label_index)) // 2, bottom + 9, str(label_index))
    for index, points in enumerate(series.values()):
        color = COLORS[index % len(COLORS)]
        previous: tuple[int, int] | None = None
        for number, value in enumerate(points):
            if value is None:
                previous = None
                continue
            point = (round(left + number / span * (right - left)), round(bottom - value / top_value * (bottom - top)))
            if previous is not None:
                canvas.line(*previous, *point, color, width=2)
            canvas.rect(point[0] - 2, point[1] - 2, point[0] + 2, point[1] + 2, color)
            previous = point
    return canvas.png()

"""Names as chart labels that cannot fail to draw, whatever script they are written in.

A data set's class folders may be named in any script (Japanese, Arabic,
emoji). matplotlib draws with DejaVu Sans and, for a character that font
lacks, warns about the missing glyph and draws a box: in a session that turns
warnings into errors, that lost the whole report. So before drawing: keep the
names if the default font has every glyph; else use an installed font that
has them all (a CJK font, say); else draw each name that still cannot be drawn
as its class number (the report's tables, rendered by the browser, show the
real names). Names are drawn as plain text, never as mathtext (a ``$`` in a
folder name is not a formula), and cut to a length that fits the chart.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

MAX_CHARS = 24
"""Longest label drawn; longer names end in an ellipsis."""
DEFAULT_FAMILY = "DejaVu Sans"
NOT_A_SOURCE = ("Last Resort",)
"""Fonts that draw placeholder boxes for every character: they "have" every glyph but show none."""


@functools.lru_cache(maxsize=64)
def _charmap(path: str) -> frozenset[int]:
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return frozenset()


def covers(family_path: str, text: str) -> bool:
    """Whether the font file at ``family_path`` has a glyph for every character of ``text``."""
    have = _charmap(family_path)
    return all(ord(c) in have for c in text if not c.isspace())


def _fonts() -> list[tuple[str, str]]:
    """(family, file) of every installed font, the default first, placeholder fonts left out."""
    default = font_manager.findfont(DEFAULT_FAMILY, fallback_to_default=True)
    found = [(DEFAULT_FAMILY, default)]
    for entry in font_manager.fontManager.ttflist:
        if entry.name.startswith(NOT_A_SOURCE) or entry.fname == default:
            continue
        if entry.fname.lower().endswith((".ttf", ".otf", ".ttc")):
            found.append((entry.name, entry.fname))
    return found


def shorten(name: str) -> str:
    name = " ".join(str(name).split())  # newlines and tabs in a folder name: one line
    return name if len(name) <= MAX_CHARS else name[:MAX_CHARS - 1] + "…"


def drawable(names: Sequence[str]) -> tuple[list[str], str]:
    """The labels to draw for ``names`` and the font family that has all their glyphs.

    Names that no installed font can draw whole become ``class <i>``.
    """
    labels = [shorten(n) for n in names]
    fonts = _fonts()
    for family, path in fonts:
        if all(covers(path, label) for label in labels):
            return labels, family
    default_path = fonts[0][1]
    return [label if covers(default_path, label) else f"class {i}" for i, label in enumerate(labels)], \
        DEFAULT_FAMILY

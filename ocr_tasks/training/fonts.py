"""Discover the system fonts the synthetic page renderer may use.

Only Debian font packages are searched (nothing is downloaded). A font is kept when Pillow
can load it, it is a Latin text face (symbol, dingbat, math and script-specific Noto fonts are
skipped by name) and it draws all 94 printable ASCII characters as real glyphs (none empty, none
identical to the font's "missing glyph" box, letters shaped like letters).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

__all__ = [
    "DEBIAN_FONT_PACKAGES",
    "FONT_DIRS",
    "FontInfo",
    "FontsUnavailableError",
    "available_fonts",
    "classify_font",
    "font_covers_ascii",
    "load_font",
]

#: Directories searched, in order; a file name seen earlier (e.g. an ``.otf``) hides later
#: copies of the same face (the ``.t1`` Type 1 files of urw-base35).
FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation2",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/opentype/urw-base35",
    "/usr/share/fonts/type1/urw-base35",
    "/usr/share/fonts/truetype/noto",
    "/usr/share/fonts/opentype/comic-neue",
    "/usr/share/fonts/truetype/humor-sans",
)

#: Debian packages that provide the fonts above.
DEBIAN_FONT_PACKAGES: tuple[str, ...] = (
    "fonts-dejavu",
    "fonts-liberation2",
    "fonts-urw-base35",
    "fonts-noto-core",
    "fonts-comic-neue",
    "fonts-humor-sans",
)

_SUFFIXES = (".ttf", ".otf", ".t1")
_PRINTABLE = [chr(c) for c in range(33, 127)]
#: Non-text faces, excluded by file name.
_EXCLUDED = re.compile(r"Symbol|Dingbat|D050000L|Math|Music|Emoji", re.IGNORECASE)
#: The only Noto families kept: Latin text faces.
_NOTO_LATIN = re.compile(r"^Noto(Sans|Serif|SansMono|Mono|SansDisplay|SerifDisplay)-")
_SERIF = re.compile(r"Serif|Roman|C059|P052|Bookman|Z003|NimbusMono|LiberationMono", re.IGNORECASE)
_BOLD = re.compile(r"Bold|Demi|Bd", re.IGNORECASE)
_ITALIC = re.compile(r"Italic|Oblique|Ita|Z003", re.IGNORECASE)
#: Handwriting-like faces: kept for handwritten fills only, never for print.
_HAND = re.compile(r"^(ComicNeue|Humor)")


class FontsUnavailableError(RuntimeError):
    """No usable font was found; the message names the Debian packages to install."""


@dataclass(frozen=True)
class FontInfo:
    """One usable font file and its style, classified from the file name.

    Attributes:
        path: Absolute path of the font file.
        family: File-name family, e.g. ``"NimbusMonoPS"`` or ``"LiberationSerif"``.
        bold: Bold or demi weight.
        italic: Italic or oblique.
        mono: Fixed pitch (typewriter-like).
        serif: Has serifs (Courier-like mono faces count as serif).
        hand: A handwriting-like face (Comic Neue, Humor Sans), used for handwritten fills.
    """

    path: str
    family: str
    bold: bool
    italic: bool
    mono: bool
    serif: bool
    hand: bool = False

    @property
    def style(self) -> str:
        """``"regular"``, ``"bold"``, ``"italic"`` or ``"bold-italic"``."""
        if self.bold and self.italic:
            return "bold-italic"
        return "bold" if self.bold else "italic" if self.italic else "regular"


def classify_font(path: str | Path) -> FontInfo:
    """Classify a font file by its name.

    Args:
        path: Font file path.

    Returns:
        Its :class:`FontInfo`.

    >>> classify_font("/x/NimbusMonoPS-BoldItalic.otf").style
    'bold-italic'
    """
    stem = Path(path).stem
    family, _, variant = stem.partition("-")
    return FontInfo(
        path=str(path),
        family=family,
        bold=bool(_BOLD.search(variant)),
        italic=bool(_ITALIC.search(variant) or _ITALIC.search(family)),
        mono="Mono" in family,
        serif=bool(_SERIF.search(family)),
        hand=bool(_HAND.search(family)),
    )


def _ink_box(font: ImageFont.FreeTypeFont, text: str) -> tuple[tuple[int, int], bytes]:
    mask = font.getmask(text)
    return mask.size, bytes(mask)


def font_covers_ascii(path: str, size: int = 32) -> bool:
    """Whether the font draws every printable ASCII character as a real, letter-like glyph.

    Args:
        path: Font file path.
        size: Test rendering size in pixels.

    Returns:
        False when the font cannot be loaded, a glyph is empty or equals the missing-glyph
        box, or the shapes are not Latin letters (e.g. a dingbat font mapped onto ASCII).
    """
    try:
        font = ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)
        notdef = {_ink_box(font, "\U000f0000"), _ink_box(font, "\ue000")}
        glyphs = {ch: _ink_box(font, ch) for ch in _PRINTABLE}
    except (OSError, ValueError):
        return False
    for (w, h), data in glyphs.values():
        if w == 0 or h == 0 or not any(data) or ((w, h), data) in notdef:
            return False
    if len(set(glyphs.values())) < 80:  # many identical shapes: not a real ASCII face
        return False
    ascender = glyphs["l"][0][1]  # letters, not symbols: short x, tiny period, tall l
    return glyphs["x"][0][1] < 0.9 * ascender and glyphs["."][0][1] < 0.4 * ascender


def _candidate_files(font_dirs: tuple[str, ...]) -> list[Path]:
    seen: set[str] = set()
    files = []
    for folder in font_dirs:
        directory = Path(folder)
        if not directory.is_dir():
            continue
        for file in sorted(directory.iterdir()):
            if file.suffix.lower() not in _SUFFIXES or file.stem in seen or _EXCLUDED.search(file.stem):
                continue
            if file.stem.startswith("Noto") and not _NOTO_LATIN.match(file.name):
                continue
            seen.add(file.stem)
            files.append(file)
    return files


@functools.lru_cache(maxsize=8)
def _scan(font_dirs: tuple[str, ...]) -> tuple[FontInfo, ...]:
    return tuple(classify_font(f) for f in _candidate_files(font_dirs) if font_covers_ascii(str(f)))


def available_fonts(font_dirs: tuple[str, ...] | None = None) -> list[FontInfo]:
    """List the usable fonts (scanned once per process, then cached).

    Args:
        font_dirs: Directories to search; defaults to :data:`FONT_DIRS`.

    Returns:
        The fonts, sorted by directory order then file name.

    Raises:
        FontsUnavailableError: When no usable font is found.

    >>> fonts = available_fonts()  # doctest: +SKIP
    """
    found = list(_scan(tuple(font_dirs) if font_dirs is not None else FONT_DIRS))
    if not found:
        dirs = ", ".join(font_dirs or FONT_DIRS)
        raise FontsUnavailableError(
            f"no usable Latin fonts found in {dirs}; install them with "
            f"`apt-get install -y {' '.join(DEBIAN_FONT_PACKAGES)}`"
        )
    return found


@functools.lru_cache(maxsize=1024)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    """Load (and cache) a font at an integer pixel size with Pillow's basic layout.

    The basic layout draws one glyph per character (no ligatures), so character boxes can be
    computed from per-character advances.

    Args:
        path: Font file path.
        size: Size in pixels (the em size).

    Returns:
        The loaded font.
    """
    return ImageFont.truetype(path, int(size), layout_engine=ImageFont.Layout.BASIC)

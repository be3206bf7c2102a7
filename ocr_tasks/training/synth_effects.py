"""Print and scan degradations for synthetic pages.

Geometry (:func:`scan_homography`) is returned as a 3x3 matrix so word and character corners can
be mapped with exactly the transform applied to the pixels. Everything else is photometric and
leaves positions unchanged.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = [
    "MIN_TEXT_CONTRAST",
    "add_speckle",
    "ensure_text_contrast",
    "compose",
    "degrade_ink",
    "paper_background",
    "scan_effects",
    "scan_homography",
    "warp_layer",
]


def scan_homography(rng: np.random.Generator, width: int, height: int, max_angle: float = 2.0) -> np.ndarray:
    """A small scanner-bed transform: rotation up to ``max_angle`` degrees, slight scale, shift
    and perspective (corners moved by up to ~0.8% of the page size).

    Args:
        rng: Random generator.
        width: Page width.
        height: Page height.
        max_angle: Largest rotation in degrees.

    Returns:
        3x3 float64 matrix mapping flat-page points to scanned-image points.
    """
    angle = float(np.clip(rng.normal(0, max_angle / 2.2), -max_angle, max_angle))
    scale = float(rng.uniform(0.985, 1.01))
    rot = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    rot[:, 2] += rng.uniform(-0.006, 0.006, 2) * (width, height)
    h_rot = np.vstack([rot, [0, 0, 1]])
    src = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    dst = src + rng.uniform(-1, 1, (4, 2)).astype(np.float32) * np.float32(0.008 * min(width, height))
    if rng.random() < 0.5:
        dst = src.copy()
    persp = cv2.getPerspectiveTransform(src, dst)
    return persp @ h_rot


def warp_layer(layer: np.ndarray, matrix: np.ndarray, border: int = 0) -> np.ndarray:
    """Warp a uint8 layer with a 3x3 matrix into an image of the same size."""
    h, w = layer.shape[:2]
    return cv2.warpPerspective(layer, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=border)


def degrade_ink(
    coverage: np.ndarray, rng: np.random.Generator, mode: str, text_size: float = 20.0
) -> np.ndarray:
    """Printing defects on an ink coverage layer.

    Args:
        coverage: uint8 coverage (255 = ink).
        rng: Random generator.
        mode: ``"none"``, ``"faint"`` (weak toner), ``"broken"`` (eroded, gappy strokes),
            ``"bleed"`` (thickened strokes) or ``"thin"`` (eroded).
        text_size: Typical em size of the page's text in pixels; small text is degraded less
            so that it stays legible.

    Returns:
        The degraded coverage (a new array unless mode is ``"none"``).
    """
    if mode == "none":
        return coverage
    if mode == "bleed":
        k = 3 if text_size >= 22 and rng.random() < 0.5 else 2
        out = cv2.dilate(coverage, np.ones((k, k), np.uint8))
        weight = float(rng.uniform(0.25, 0.6 if text_size >= 16 else 0.4))
        return cv2.addWeighted(out, weight, coverage, 1.0 - weight, 0)
    if mode == "thin":
        return cv2.addWeighted(cv2.erode(coverage, np.ones((2, 2), np.uint8)), 0.5, coverage, 0.5, 0)
    if mode == "faint":
        return cv2.convertScaleAbs(coverage, alpha=float(rng.uniform(0.45, 0.75)))
    h, w = coverage.shape
    cell = int(rng.integers(2, 5))
    holes = rng.random((h // cell + 1, w // cell + 1), dtype=np.float32)
    holes = cv2.resize(holes, (w, h), interpolation=cv2.INTER_LINEAR)
    keep = holes > rng.uniform(0.15, 0.4)
    erode = text_size >= 16 and rng.random() < 0.5
    out = cv2.erode(coverage, np.ones((2, 1), np.uint8)) if erode else coverage
    return np.where(keep, out, (out * 0.25).astype(np.uint8))


def paper_background(rng: np.random.Generator, height: int, width: int, low_contrast: bool) -> np.ndarray:
    """Paper grey levels: base tone, uneven shading (gradient plus blotches) and fine texture.

    Returns:
        float32 ``H x W`` grey levels.
    """
    base = rng.uniform(170, 215) if low_contrast else rng.uniform(215, 252)
    gy, gx = rng.uniform(-18, 18, 2)
    ys = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    xs = np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    paper = base + gy * ys + gx * xs
    blotch = rng.standard_normal((6, 5), dtype=np.float32) * rng.uniform(0, 7)
    paper = paper + cv2.resize(blotch, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal((height // 4 + 1, width // 4 + 1), dtype=np.float32) * rng.uniform(0, 4)
    paper = paper + cv2.resize(grain, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.minimum(paper, 255.0)


def add_speckle(layer: np.ndarray, rng: np.random.Generator, density: float) -> None:
    """Scatter dust and toner dots onto a coverage layer, in place."""
    h, w = layer.shape
    n = int(density * h * w / 1e4)
    if n <= 0:
        return
    xs, ys = rng.integers(0, w, n), rng.integers(0, h, n)
    radii = rng.choice(np.array([0, 0, 0, 0, 1, 1, 2]), n)
    values = rng.integers(60, 230, n)
    for x, y, r, v in zip(xs.tolist(), ys.tolist(), radii.tolist(), values.tolist()):
        cv2.circle(layer, (x, y), r, v, -1, cv2.LINE_AA)


#: Smallest grey-level difference between the paper and the middle of the text's strokes,
#: before blur and noise. Faint toner on low-contrast paper could leave 15-40 levels, which
#: the sensor noise (up to sigma 9) and blur then made unreadable to anybody; real faint
#: photocopies keep more.
MIN_TEXT_CONTRAST = 70.0


def ensure_text_contrast(image: np.ndarray, background: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """Stretch ink away from the paper when the text is too faint to read.

    Args:
        image: float32 grey image (ink composed over ``background``).
        background: float32 grey levels of the paper (and scanner bed) under the ink.
        strokes: bool mask of the words' full-coverage stroke pixels.

    Returns:
        ``image`` itself when the median stroke is at least :data:`MIN_TEXT_CONTRAST` darker
        than the paper under it, else a copy whose ink contrast is scaled up to that.
    """
    if not strokes.any():
        return image
    contrast = float(np.median(background[strokes] - image[strokes]))
    if contrast >= MIN_TEXT_CONTRAST or contrast <= 0:
        return image
    gain = np.float32(MIN_TEXT_CONTRAST / contrast)
    return np.maximum(background - (background - image) * gain, 0.0)


def compose(coverage: np.ndarray, paper: np.ndarray, ink_level: float) -> np.ndarray:
    """Blend ink over paper: ``paper - (paper - ink_level) * coverage / 255``.

    Returns:
        float32 grey image.
    """
    cov = coverage.astype(np.float32) * np.float32(1 / 255)
    return paper - (paper - np.float32(ink_level)) * cov


def scan_effects(
    image: np.ndarray,
    rng: np.random.Generator,
    fax: bool,
    text_size: float = 20.0,
    text_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Scanner optics and electronics: blur, sensor noise, optional fax-like binarisation at
    low resolution, and JPEG compression.

    Args:
        image: float32 grey image.
        rng: Random generator.
        fax: Downscale to ~100 dpi or less, threshold, and scale back up (hard, jaggy edges).
        text_size: Typical em size of the text in pixels; bounds blur and downscaling so that
            text keeps at least ~9 px per em.
        text_mask: Where the words' strokes are (bool, image-sized). The fax threshold is set
            between the paper and the *text's* ink level, as a fax's exposure is set for the
            writing: without it the darkest 0.5% of the page (form lines, a dark scanner bed)
            set it, and faint text fell entirely on the paper side and vanished.

    Returns:
        uint8 grey image of the same size.
    """
    h, w = image.shape
    sigma = rng.uniform(0.3, float(np.clip(text_size / 18, 0.5, 1.1)))
    if rng.random() < 0.8:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    noise = rng.uniform(1, 9)
    grain = rng.standard_normal((h // 2 + 1, w // 2 + 1), dtype=np.float32)
    image = image + cv2.resize(grain, (w, h), interpolation=cv2.INTER_NEAREST) * np.float32(noise)
    out = np.clip(image, 0, 255).astype(np.uint8)
    if fax:
        f = rng.uniform(min(0.9, max(0.5, 9.5 / text_size)), 0.95)
        size = (max(1, int(w * f)), max(1, int(h * f)))
        small = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
        paper, ink = np.percentile(small[::4, ::4], (50, 0.5))
        if text_mask is not None:
            on_text = cv2.resize(text_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            if int(on_text.sum()) >= 20:
                ink = np.percentile(small[on_text], 50)
        thr = float(paper - (paper - ink) * rng.uniform(0.3, 0.55))
        small = np.where(small > thr, np.uint8(rng.integers(225, 256)), np.uint8(rng.integers(0, 50)))
        out = cv2.resize(
            small, (w, h), interpolation=cv2.INTER_NEAREST if rng.random() < 0.5 else cv2.INTER_LINEAR
        )
    if rng.random() < 0.6:
        quality = int(rng.integers(25, 90))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out

"""The ShapeBench oracle: exact GenEval-style judgement of images of the ShapeBench world.

Pure functions first, the metric last:

- :func:`analyze` ``(image) -> [Detection]``: colour segmentation against the palette, connected components, shape
  classification by template matching.
- :func:`judge` ``(image, metadata) -> (correct, reason)``: GenEval's rules on those detections (``include`` clauses
  with at least ``count`` objects of the class, the colour of the top-``count`` ones, positions by box centres with the
  0.1 margin; ``exclude`` fails at ``count`` or more).
- :class:`ShapeBenchScore`: the ``SampleMetric`` (per-task accuracy; overall = unweighted mean of the six tasks).

Segmentation is built for generated images, not only clean renders: the background colour is estimated per image
(generated backgrounds are tinted and noisy), and each pixel is written as background + a * (palette colour -
background), so a soft edge (a < 1) keeps its colour, and a pixel is foreground only where a >= 0.5 and the
residual is small. The palette's wheel neighbours are close (and each object's colour is jittered), so a pixel's
nearest colour only separates objects; an object's colour is decided once per object, from the mean of its interior
pixels (nearest palette colour, relative to the background).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from scipy import ndimage

from datamodules.shapebench.prompts import TASKS
from datamodules.shapebench.world import BACKGROUND, COLORS, PALETTE, SHAPES, SUPERSAMPLE, shape_indicator

from .base import SampleMetric
from .geneval import POSITION_THRESHOLD, relative_position  # GenEval's position rule, shared

#: a pixel is foreground of colour k where its coverage a_k >= this
COVERAGE_THRESHOLD = 0.5
#: ... and its distance to the line background -> colour k is at most this fraction of |colour k - background|
RESIDUAL_TOLERANCE = 0.45
#: components smaller than this (pixels) are noise
MIN_AREA = 14
#: a component is an object of the best-matching class if the soft IoU with that template is at least this
MIN_SHAPE_IOU = 0.6
#: the world draws no box smaller than 9 px: a blob whose fitted box is under this is no object
MIN_SIDE = 8
#: every ShapeBench shape fills a square box: a blob whose box is more elongated than this is no object
MAX_ASPECT = 1.5
#: GenEval's position margin
POSITION_MARGIN = POSITION_THRESHOLD
#: an object's colour is the mean of its pixels with at least this coverage (its interior)
INTERIOR_COVERAGE = 0.8

REASONS: dict[int, str] = {0: "correct", 1: "missing object", 2: "wrong colour", 3: "wrong position",
                           4: "no position target", 5: "too many objects"}


@dataclass(frozen=True)
class Detection:
    """One detected object: class, colour, box (x0, y0, x1, y1) in pixels (x1, y1 exclusive), area, template IoU."""

    shape: str
    color: str
    box: tuple[int, int, int, int]
    area: int
    score: float


# ---------------------------------------------------------------------------------------------- input
def to_rgb255(image: Any) -> np.ndarray:
    """(H, W, 3) float64 in 0..255 from a (3, H, W) float tensor / array in [0, 1] or an (H, W, 3) uint8 array."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise ValueError(f"image must be (3, H, W) float in [0, 1] or (H, W, 3) uint8; got shape {arr.shape}")
    if arr.dtype == np.uint8:
        if arr.shape[2] != 3:
            raise ValueError(f"a uint8 image must be (H, W, 3); got shape {arr.shape}")
        return arr.astype(np.float64)
    if arr.shape[0] != 3:
        raise ValueError(f"a float image must be (3, H, W) in [0, 1]; got shape {arr.shape}")
    return np.clip(arr.transpose(1, 2, 0).astype(np.float64), 0.0, 1.0) * 255.0


# ---------------------------------------------------------------------------------------------- segmentation
def estimate_background(rgb: np.ndarray) -> np.ndarray:
    """Median colour of the darker half of the image (objects are brighter than the background and cover < half)."""
    flat = rgb.reshape(-1, 3)
    bright = flat.mean(1)
    dark = flat[bright <= np.quantile(bright, 0.5)]
    return np.median(dark, axis=0)


def coverage_maps(rgb: np.ndarray, background: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel and palette colour: coverage a_k (H, W, K) and relative residual (H, W, K)."""
    bg = estimate_background(rgb) if background is None else background
    d = rgb - bg
    cols = np.asarray([PALETTE[c] for c in COLORS], dtype=np.float64) - bg  # (K, 3)
    norm2 = (cols * cols).sum(1)
    a = np.einsum("hwc,kc->hwk", d, cols) / norm2
    resid = d[:, :, None, :] - a[..., None] * cols[None, None]
    rel = np.sqrt((resid * resid).sum(-1) / norm2)
    return a, rel


def pixel_labels(rgb: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel (H, W): its label (the nearest colour where the pixel is foreground, else -1), its nearest colour
    (the smallest residual among the colours it has positive coverage of) and that colour's coverage in [0, 1]."""
    a, rel = coverage_maps(rgb, background)
    nearest = np.argmin(np.where(a > 0, rel, np.inf), axis=-1)
    cov = np.clip(np.take_along_axis(a, nearest[..., None], -1)[..., 0], 0.0, 1.0)
    residual = np.take_along_axis(rel, nearest[..., None], -1)[..., 0]
    labels = np.where((cov >= COVERAGE_THRESHOLD) & (residual <= RESIDUAL_TOLERANCE), nearest, -1)
    return labels, nearest, cov


def components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask, each as an (N, 2) array of (row, col) in raster order; components in
    the raster order of their first pixel."""
    labels, n = ndimage.label(mask)  # the default structure of a 2-D label is the 4-neighbourhood
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")  # pixel indices grouped by label, raster order within a label
    sizes = np.bincount(flat, minlength=n + 1)
    rows, cols = np.divmod(order[sizes[0]:], mask.shape[1])
    return np.split(np.stack([rows, cols], axis=1), np.cumsum(sizes[1:-1])) if n else []


#: blur levels (Gaussian sigma, pixels) of the templates: generated images have softer edges than renders
TEMPLATE_BLURS = (0.0, 0.6, 1.0)
#: pixels of context around a box that the blurred templates spread into
PAD = 2


def _gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """``x`` blurred by a Gaussian of ``sigma`` pixels cut at 3 sigma (rounded up), zeros outside ``x``."""
    if sigma <= 0:
        return x
    return ndimage.gaussian_filter(x, sigma, mode="constant", cval=0.0, radius=int(np.ceil(3 * sigma)))


#: pixels added to the (left, top, right, bottom) of a blob's box before template matching: up to one on any side (a
#: threshold at half coverage can drop a partly covered row or column) ...
BOX_GROWTHS: tuple[tuple[int, int, int, int], ...] = tuple(itertools.product((0, 1), repeat=4))
#: ... or one to two on every side, a fit that must beat the one above by ``WIDE_BOX_MARGIN`` of IoU: a small star
#: blurred by 0.7 px loses its tips over two pixels and fits a diamond in its shrunken box (found by the validation
#: at tint 15, noise 8, blur 0.7: star 0.82-0.88 against diamond 0.75-0.77), while a rounded generated blob fits a
#: diamond in the wider box about as well as a circle in its own (0.85 against 0.84), and stays a circle
WIDE_BOX_GROWTHS: tuple[tuple[int, int, int, int], ...] = tuple(
    g for g in itertools.product((1, 2), repeat=4) if max(g) == 2)
WIDE_BOX_MARGIN = 0.04


@functools.lru_cache(maxsize=8192)
def template(shape: str, width: int, height: int, blur: float = 0.0) -> np.ndarray:
    """Coverage of ``shape`` stretched to a width x height box, on a canvas with ``PAD`` pixels of margin, blurred
    with a Gaussian of ``blur`` pixels: float64 (height + 2 PAD, width + 2 PAD)."""
    us = (np.arange(width * SUPERSAMPLE) + 0.5) / (width * SUPERSAMPLE) * 2 - 1
    vs = (np.arange(height * SUPERSAMPLE) + 0.5) / (height * SUPERSAMPLE) * 2 - 1
    u, v = np.meshgrid(us, vs)
    inside = shape_indicator(shape, u, v).astype(np.float64)
    cov = np.pad(inside.reshape(height, SUPERSAMPLE, width, SUPERSAMPLE).mean(axis=(1, 3)), PAD)
    out = _gaussian_blur(cov, blur)
    out.setflags(write=False)
    return out


def classify(soft: np.ndarray, box: tuple[int, int, int, int]) -> tuple[str, float, tuple[int, int, int, int]]:
    """Best (shape, soft IoU, box) for an object whose half-coverage mask has the box (x0, y0, x1, y1).

    ``soft`` is the object's coverage over the whole image (0 outside it). It is compared with every shape's
    template at every blur level, in the box and in the box grown on its sides (``BOX_GROWTHS``, then
    ``WIDE_BOX_GROWTHS`` by a margin); the best fit wins."""
    near = _best_fit(soft, box, BOX_GROWTHS)
    wide = _best_fit(soft, box, WIDE_BOX_GROWTHS)
    return wide if wide[1] >= near[1] + WIDE_BOX_MARGIN else near


def _best_fit(soft: np.ndarray, box: tuple[int, int, int, int],
              growths: Sequence[tuple[int, int, int, int]]) -> tuple[str, float, tuple[int, int, int, int]]:
    h, w = soft.shape
    x0, y0, x1, y1 = box
    m = max(max(g) for g in growths)
    padded = np.pad(soft, PAD + m)
    best: tuple[str, float, tuple[int, int, int, int]] = (SHAPES[0], -1.0, box)
    for gl, gt, gr, gb in growths:
        bx0, by0, bx1, by1 = x0 - gl, y0 - gt, x1 + gr, y1 + gb
        crop = padded[by0 + m: by1 + m + 2 * PAD, bx0 + m: bx1 + m + 2 * PAD]  # box + PAD margin
        stack = _template_stack(bx1 - bx0, by1 - by0)
        iou = np.minimum(crop, stack).sum((1, 2)) / np.maximum(np.maximum(crop, stack).sum((1, 2)), 1e-9)
        j = int(np.argmax(iou))
        if iou[j] > best[1]:
            best = (SHAPES[j // len(TEMPLATE_BLURS)], float(iou[j]), (max(0, bx0), max(0, by0), min(w, bx1), min(h, by1)))
    return best


@functools.lru_cache(maxsize=1024)
def _template_stack(width: int, height: int) -> np.ndarray:
    """All templates of one box size: (len(SHAPES) * len(TEMPLATE_BLURS), height + 2 PAD, width + 2 PAD)."""
    out = np.stack([template(s, width, height, b) for s in SHAPES for b in TEMPLATE_BLURS])
    out.setflags(write=False)
    return out


def object_color(pix: np.ndarray, cov: np.ndarray, offset: np.ndarray) -> str:
    """The palette colour nearest (in RGB, relative to the background) to the mean of an object's interior.

    ``pix``: the object's pixels (N, 2); ``cov``: per-pixel coverage (H, W); ``offset``: image minus background
    (H, W, 3). The interior is the pixels with coverage >= ``INTERIOR_COVERAGE``, or the best-covered third of the
    object where it has fewer than three such pixels (a thin, blurred shape)."""
    c = cov[pix[:, 0], pix[:, 1]]
    inner = pix[c >= INTERIOR_COVERAGE]
    if len(inner) < 3:
        inner = pix[np.argsort(-c)[: max(1, len(pix) // 3)]]
    mean = offset[inner[:, 0], inner[:, 1]].mean(0)
    dist = ((_PALETTE_OFFSETS - mean) ** 2).sum(1)
    return COLORS[int(np.argmin(dist))]


_PALETTE_OFFSETS = np.asarray([PALETTE[c] for c in COLORS], dtype=np.float64) - np.asarray(BACKGROUND, np.float64)


def _detect(pix: np.ndarray, cov: np.ndarray, rim_mask: np.ndarray, offset: np.ndarray) -> Detection | None:
    """The object formed by pixels ``pix`` (N, 2) with its anti-aliased rim, or None if it is no shape."""
    if len(pix) < MIN_AREA:
        return None
    soft = np.where(rim_mask, cov, 0.0)
    soft[pix[:, 0], pix[:, 1]] = cov[pix[:, 0], pix[:, 1]]
    box = (int(pix[:, 1].min()), int(pix[:, 0].min()), int(pix[:, 1].max()) + 1, int(pix[:, 0].max()) + 1)
    shape, iou, fitted = classify(soft, box)
    w, h = fitted[2] - fitted[0], fitted[3] - fitted[1]
    if iou < MIN_SHAPE_IOU or max(w, h) > MAX_ASPECT * min(w, h) or max(w, h) < MIN_SIDE:
        return None
    return Detection(shape, object_color(pix, cov, offset), fitted, len(pix), iou)


def analyze(image: Any) -> list[Detection]:
    """Objects in one image, sorted by score (template IoU), highest first.

    ``image``: (3, H, W) float in [0, 1] (tensor or array) or (H, W, 3) uint8.
    """
    rgb = to_rgb255(image)
    bg = estimate_background(rgb)
    labels, nearest, cov = pixel_labels(rgb, bg)
    offset = rgb - bg
    unlabelled = labels == -1
    # the anti-aliased rim of colour k: partly covered pixels, not foreground, whose nearest colour is k
    rims = [unlabelled & (nearest == k) for k in range(len(COLORS))]
    dets: list[Detection] = []
    for blob in components(labels >= 0):
        if len(blob) < MIN_AREA:
            continue
        blob_labels = labels[blob[:, 0], blob[:, 1]]
        colours = np.unique(blob_labels)
        if len(colours) == 1:  # a one-colour blob is that colour's component
            det = _detect(blob, cov, rims[colours[0]], offset)
            dets.extend([det] if det is not None else [])
            continue
        in_blob = np.zeros(labels.shape, dtype=bool)
        in_blob[blob[:, 0], blob[:, 1]] = True
        parts = []
        for k in colours:
            for pix in components((labels == k) & in_blob):
                det = _detect(pix, cov, rims[k], offset)
                if det is not None:
                    parts.append(det)
        # one shape whose pixels lie nearest to two colours (a gradient, or neighbouring colours under noise) or two
        # touching shapes: the better explanation wins
        whole = _detect(blob, cov, np.logical_or.reduce([rims[k] for k in colours]), offset)
        if whole is not None and whole.score >= max((d.score for d in parts), default=0.0):
            parts = [whole]
        dets.extend(parts)
    dets.sort(key=lambda d: -d.score)
    return dets


# ---------------------------------------------------------------------------------------------- rules
def judge_detections(detections: Sequence[Detection], metadata: dict[str, Any]) -> tuple[bool, str, int]:
    """GenEval's verdict on detections: (correct, reason text, reason code of the first failure; 0 if correct)."""
    include = metadata.get("include")
    if not include:
        raise ValueError("metadata must have a non-empty 'include' list of {class, count[, color][, position]}")
    by_class: dict[str, list[Detection]] = {}
    for d in detections:  # already sorted by score
        by_class.setdefault(d.shape, []).append(d)
    reasons: list[tuple[int, str]] = []
    matched_groups: list[list[Detection] | None] = []
    for req in include:
        cls, count = req["class"], int(req.get("count", 1))
        found = by_class.get(cls, [])[:count]
        ok = True
        if len(found) < count:
            ok = False
            reasons.append((1, f"expected {cls}>={count}, found {len(by_class.get(cls, []))}"))
        else:
            if "color" in req:
                got = [d.color for d in found]
                if got.count(req["color"]) < count:
                    ok = False
                    reasons.append((2, f"expected {req['color']} {cls}>={count}, found {'/'.join(got)}"))
            if "position" in req and ok:
                rel, target = req["position"]
                targets = matched_groups[int(target)]
                if targets is None:
                    ok = False
                    reasons.append((4, f"no target for {cls} to be {rel}"))
                else:
                    for d in found:
                        for t in targets:
                            if rel not in relative_position(d.box, t.box):
                                ok = False
                        if not ok:
                            reasons.append((3, f"expected {cls} {rel} target"))
                            break
        matched_groups.append(found if ok else None)
    for req in metadata.get("exclude", []) or []:
        cls, count = req["class"], int(req["count"])
        n = len(by_class.get(cls, []))
        if n >= count:
            reasons.append((5, f"expected {cls}<{count}, found {n}"))
    if not reasons:
        return True, "correct", 0
    return False, "; ".join(r for _, r in reasons), reasons[0][0]


def judge(image: Any, metadata: dict[str, Any]) -> tuple[bool, str]:
    """(correct, reason) for one image against GenEval-style metadata."""
    ok, reason, _ = judge_detections(analyze(image), metadata)
    return ok, reason


# ---------------------------------------------------------------------------------------------- metric
class ShapeBenchScore(SampleMetric):
    """Oracle accuracy on ShapeBench: per-sample ``shapebench`` (1.0 correct / 0.0 wrong) and ``shapebench_reason``
    (int code of the first failed rule, see :data:`REASONS`); ``compute()`` gives per-task accuracy and the
    unweighted mean over the tasks."""

    name = "shapebench"
    tags = TASKS

    def score_batch(self, media: torch.Tensor, prompts: Sequence[str],
                    metadata: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if media.ndim != 4 or media.shape[1] != 3:
            raise ValueError(f"media must be images (B, 3, H, W) in [0, 1]; got shape {tuple(media.shape)}")
        correct, codes = [], []
        for img, meta in zip(media, metadata):
            ok, _, code = judge_detections(analyze(img), meta)
            correct.append(1.0 if ok else 0.0)
            codes.append(code)
        return {self.name: torch.tensor(correct, dtype=torch.float32),
                f"{self.name}_reason": torch.tensor(codes, dtype=torch.int64)}

    def conventions(self) -> dict[str, Any]:
        return {"oracle": "palette segmentation + template matching", "position_margin": POSITION_MARGIN,
                "min_shape_iou": MIN_SHAPE_IOU, "reasons": REASONS}

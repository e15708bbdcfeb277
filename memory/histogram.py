"""The object-histogram image embedder: the centroid space of `slc train bank`'s default banks.

Why in memory: a bank trained with ``slc train bank`` defaults records ``embedder: object-histogram`` and
its centroids live in this space; at run time :meth:`slc.memory.store.ConceptMemory.concept_embedding`
embeds a concept's stored reference photos with the bank's own embedder (:func:`slc.memory.embedders.embedder_named`)
whenever it differs from the memory's image encoder, so the runtime (memory, graphs, tools) needs it too, not
only the CaT pipeline (:mod:`slc.cat.filter` re-exports it). No model, deterministic, ~1 ms per 64 px image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class ObjectHistogramEmbedder:
    """Cheap, deterministic embedder for concept-world images (no model; ~1 ms per 64 px image).

    Blocks (each L2-normalized, then weighted, then the whole row normalized):
    - colour (w=1.0): 24-bin, circularly smoothed hue histogram of the saturated pixels (the object's body and its pattern
      ink; backgrounds, clutter and accessories are unsaturated);
    - pattern (w=0.6): share of dark "ink" pixels inside the body, and their 4x4 spatial layout;
    - silhouette (w=0.5): the body mask cropped to its box and pooled to 6x6;
    - accessory (w=0.6): dark pixels above the body pooled to 3x3 (hat vs antenna) and below it (bowtie).
    Free dimensions move none of these much (position/scale are cropped away, lighting is a brightness
    change that keeps hue), so positives stay similar and identity changes do not.
    """

    name = "object-histogram"
    dim = 24 + 17 + 36 + 10

    def __init__(self, weights: tuple[float, float, float, float] = (1.0, 0.6, 0.5, 0.6)) -> None:
        self.weights = weights

    def _one(self, image: "Image.Image") -> np.ndarray:
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        mx, mn = rgb.max(axis=2), rgb.min(axis=2)
        sat = (mx - mn) / np.maximum(mx, 1e-6)
        body = (sat > 0.35) & (mx > 0.2)
        out = np.zeros(self.dim, dtype=np.float32)
        if body.sum() < 4:
            return out
        hsv = np.asarray(image.convert("HSV"), dtype=np.float32)
        # Soft (circularly smoothed) hue histogram: a lighting change that nudges the hue across a bin
        # edge (e.g. clipped bright pink) must not look like another colour.
        fine = np.bincount((hsv[..., 0][body] * 96 / 256).astype(int) % 96, minlength=96).astype(np.float32)
        hist = np.real(np.fft.ifft(np.fft.fft(fine) * np.fft.fft(_HUE_KERNEL))).reshape(24, 4).sum(axis=1)
        ys, xs = np.nonzero(body)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        v = mx[y0:y1, x0:x1]
        b = body[y0:y1, x0:x1]
        # Ink = clearly darker than the body's bright side (p90, not the median: stripes cover ~half).
        ink = b & (v < 0.72 * np.percentile(mx[body], 90))
        ink_share = ink.sum() / max(1, b.sum())
        pattern = np.concatenate([[ink_share * 4.0], _pool(ink.astype(np.float32), 4).ravel()])
        silhouette = _pool(b.astype(np.float32), 6).ravel()
        h, w = y1 - y0, x1 - x0
        dark = mx < 0.2
        xa, xb = max(0, x0 - w // 4), x1 + w // 4
        above = dark[max(0, y0 - (3 * h) // 4):y0, xa:xb]
        below = dark[y1:y1 + h // 2, xa:xb]
        acc = np.concatenate([_pool(above.astype(np.float32), 3).ravel() if above.size else np.zeros(9),
                              [below.mean() if below.size else 0.0]]) + 0.02
        blocks = [hist, pattern, silhouette, acc]
        return np.concatenate([w_ * _l2(bk)[0] for w_, bk in zip(self.weights, blocks)])

    def embed_images(self, images: Sequence["Image.Image"]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.dim), dtype=np.float32)
        return _l2(np.stack([self._one(im) for im in images]))


_HUE_KERNEL = np.exp(-0.5 * (np.minimum(np.arange(96), 96 - np.arange(96)) / 2.0) ** 2).astype(np.float32)


def _pool(a: np.ndarray, k: int) -> np.ndarray:
    """Average-pool a 2-D array to k x k (any input size >= 1)."""
    h, w = a.shape
    ys = np.linspace(0, h, k + 1).astype(int)
    xs = np.linspace(0, w, k + 1).astype(int)
    out = np.zeros((k, k), dtype=np.float32)
    for i in range(k):
        for j in range(k):
            cell = a[ys[i]:max(ys[i + 1], ys[i] + 1), xs[j]:max(xs[j + 1], xs[j] + 1)]
            out[i, j] = cell.mean() if cell.size else 0.0
    return out


__all__ = ["ObjectHistogramEmbedder"]

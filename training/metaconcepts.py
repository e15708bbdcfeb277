"""Meta-concepts: K-means over concept reference embeddings, so one LoRA adapter serves a cluster.

Why: SLC trains K "meta-concept" adapters once and routes each new concept to the adapter whose
centroid is nearest to the mean embedding of its reference images (cosine). SLC fixed K=10 and never
varied it; here K is a parameter (``slc train --k``) and the learning benchmark compares K=1 with K>1.

Embeddings are L2-normalized before clustering and centroids are re-normalized after, so the K-means
geometry matches the cosine routing of :meth:`slc.agent.adapters.AdapterBank.route` (spherical K-means).
Any image embedder works (the :class:`slc.memory.embedders.ImageEmbedder` protocol, e.g. CLIP, or
:class:`slc.cat.filter.ObjectHistogramEmbedder` for the concept world); the bank records its name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class MetaConcept(BaseModel):
    """One cluster: its adapter name, unit centroid and member concepts."""

    name: str
    centroid: list[float]
    concepts: list[str]


class MetaConcepts(BaseModel):
    """The result of clustering: K meta-concepts (some K-means clusters may merge if there are few concepts)."""

    model_config = ConfigDict(frozen=False)

    k: int = Field(ge=1)
    embedder: str | None = None
    metas: list[MetaConcept]

    def centroids(self) -> np.ndarray:
        return np.asarray([m.centroid for m in self.metas], dtype=np.float32)

    def assign(self, embedding: np.ndarray | Sequence[float]) -> str:
        """The meta-concept nearest (cosine) to one embedding: the same rule as AdapterBank.route."""
        e = _unit(np.asarray(embedding, dtype=np.float64).ravel())
        return self.metas[int(np.argmax(_unit(self.centroids()) @ e))].name

    def members(self) -> dict[str, list[str]]:
        return {m.name: list(m.concepts) for m in self.metas}


def concept_embeddings(embedder: Any, references: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    """Mean (then unit) embedding of each concept's reference images, as concept memory computes it."""
    out = {}
    for name, images in references.items():
        if not images:
            raise ValueError(f"concept {name!r} has no reference images to embed")
        out[name] = _unit(np.asarray(embedder.embed_images(list(images)), dtype=np.float64).mean(axis=0))
    return out


def cluster_concepts(
    embeddings: Mapping[str, np.ndarray], k: int, *, seed: int = 0, embedder: str | None = None, prefix: str = "meta"
) -> MetaConcepts:
    """Spherical K-means of concept embeddings into ``k`` meta-concepts named ``meta00``, ``meta01``...

    ``k`` larger than the number of concepts is clipped to it; empty clusters are dropped. Deterministic
    for a given ``seed`` (sklearn KMeans, n_init=10).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    names = sorted(embeddings)
    if not names:
        raise ValueError("no concept embeddings to cluster")
    x = _unit(np.stack([np.asarray(embeddings[n], dtype=np.float64).ravel() for n in names]))
    k = min(k, len(names))
    if k == 1:
        labels = np.zeros(len(names), dtype=int)
    else:
        from sklearn.cluster import KMeans

        labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x).labels_
    metas = []
    for j in sorted(set(labels.tolist())):
        idx = np.flatnonzero(labels == j)
        centroid = _unit(x[idx].mean(axis=0))
        metas.append(MetaConcept(name=f"{prefix}{len(metas):02d}", centroid=centroid.tolist(),
                                 concepts=[names[i] for i in idx]))
    return MetaConcepts(k=len(metas), embedder=embedder, metas=metas)


__all__ = ["MetaConcept", "MetaConcepts", "cluster_concepts", "concept_embeddings"]

"""Re-identification: one ``person_id`` per person across cuts and re-appearances.

Two steps with a small surface, so that they sit beside the pipeline rather than in it:

- per segment, in the worker right after the crops are cut: ``embed_faces`` gives each
  face clip the identity vectors of a few of its best-seen frames (one batched call per
  segment); ``with_embeddings`` wraps the pipeline's media chain with it. The vectors
  travel with the clip into its row (``EMBEDDINGS_KEY``, never written).
- per video, once its rows are complete: ``People.assign`` first splits every track
  where its face vectors say the person changed (a cut between two people framed
  alike keeps one overlap track), then clusters the tracks into people by average
  linkage under a distance threshold. Tracks seen at the same time are never joined.
  With the ``run`` scope, each video's people are then matched to the people of the
  videos before it (the runner hands them on in input order: ``run/input_order.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from mmadfer_cli.faces.embedding import FaceEmbeddings
from mmadfer_cli.media.segments import CLIP_FRAMES
from mmadfer_cli.run.chunk import close_segments
from mmadfer_cli.run.rows import EMBEDDINGS_KEY

if TYPE_CHECKING:
    from mmadfer_cli.faces.embedding import FaceEmbedder
    from mmadfer_cli.run.chunk import ChunkJob, ClipSource
    from mmadfer_cli.run.clips import FaceClip, SegmentClips

SCOPES = ("video", "run")
DEFAULT_THRESHOLD = 0.5  # measured: benchmarks/reid_distances.py
EMBEDDED_FRAMES = 3  # per face clip: the best-scored of each third of the frames it was found in
_REFERENCE = 6  # a track's last observations that a new one is compared with


@dataclass(frozen=True)
class ReidSettings:
    """How faces are re-identified (recorded with the results)."""

    threshold: float = DEFAULT_THRESHOLD
    scope: str = "video"
    frames: int = EMBEDDED_FRAMES

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"--reid-scope must be one of {', '.join(SCOPES)}, not {self.scope!r}")


# ---- per segment, in the workers -------------------------------------------------------


def pick_slots(scores: np.ndarray | None, count: int) -> tuple[int, ...]:
    """The best-scored frame in each of ``count`` equal parts of the frames the face was found
    in (all frames when it was found in none), so that the embedded views are spread over the
    time it was seen."""
    if scores is None:
        scores = np.ones(CLIP_FRAMES, np.float32)
    detected = np.nonzero(scores > 0)[0]
    if len(detected) == 0:
        detected = np.arange(len(scores))
    parts = np.array_split(detected, min(count, len(detected)))
    return tuple(int(part[np.argmax(scores[part])]) for part in parts)


def embed_faces(segment: SegmentClips, embedder: FaceEmbedder, frames: int) -> SegmentClips:
    """The segment with identity vectors on each face clip, all faces in one batch."""
    if not segment.faces:
        return segment
    slots = [pick_slots(face.scores, frames) for face in segment.faces]
    crops = torch.cat([face.clip[list(s)] for face, s in zip(segment.faces, slots, strict=True)])
    vectors = embedder.embed(crops)
    faces: list[FaceClip] = []
    start = 0
    for face, picked in zip(segment.faces, slots, strict=True):
        found = FaceEmbeddings(picked, vectors[start : start + len(picked)])
        faces.append(dataclasses.replace(face, embeddings=found))
        start += len(picked)
    return dataclasses.replace(segment, faces=faces)


def with_embeddings(
    open_source: Callable[[], ClipSource],
    make_embedder: Callable[[], FaceEmbedder],
    frames: int = EMBEDDED_FRAMES,
) -> Callable[[], ClipSource]:
    """The pipeline's media chain with ``embed_faces`` after it; an embedder per worker."""

    def open_embedding_source() -> ClipSource:
        source = open_source()
        embedder = make_embedder()

        def clips(path: Path, job: ChunkJob) -> Iterator[SegmentClips]:
            segments = source(path, job)
            try:
                for segment in segments:
                    yield embed_faces(segment, embedder, frames)
            finally:
                close_segments(segments)

        return clips

    return open_embedding_source


# ---- per video, once its rows are complete -----------------------------------------------


@dataclass
class _Piece:
    """A stretch of one track with one face: its observations and the rows it owns."""

    track_id: int
    times: list[float] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def mean(self) -> np.ndarray:
        return np.mean(self.vectors, axis=0)


def _observations(row: dict[str, Any]) -> list[tuple[float, np.ndarray]]:
    found: FaceEmbeddings | None = row.get(EMBEDDINGS_KEY)
    if found is None:
        return []
    step = (row["end_s"] - row["start_s"]) / CLIP_FRAMES
    return [
        (row["start_s"] + (slot + 0.5) * step, vector)
        for slot, vector in zip(found.slots, found.vectors, strict=True)
    ]


def split_track(rows: list[dict[str, Any]], threshold: float) -> list[_Piece]:
    """A track's rows cut where its face changed to another person (two far observations in a
    row, or a far last one), then consecutive stretches that are still alike joined again.

    Each row goes to the stretch that holds most of its observations (a segment with a cut
    inside shows two faces; it is counted for the one seen longer).
    """
    track_id = int(rows[0]["track_id"])
    observed = sorted(
        ((t, v, i) for i, row in enumerate(rows) for t, v in _observations(row)),
        key=lambda o: o[0],
    )
    pieces = [_Piece(track_id)]
    owner: list[int] = []  # piece index of each observation
    for k, (time_s, vector, _) in enumerate(observed):
        current = pieces[-1]
        if current.vectors:
            reference = np.mean(current.vectors[-_REFERENCE:], axis=0)
            far = np.linalg.norm(vector - reference) > threshold
            later = observed[k + 1][1] if k + 1 < len(observed) else None
            if far and (later is None or np.linalg.norm(later - reference) > threshold):
                pieces.append(current := _Piece(track_id))
        current.times.append(time_s)
        current.vectors.append(vector)
        owner.append(len(pieces) - 1)
    votes = np.zeros((len(rows), len(pieces)), np.int64)
    for (_, _, i), p in zip(observed, owner, strict=True):
        votes[i, p] += 1
    for i, row in enumerate(rows):
        pieces[int(np.argmax(votes[i]))].rows.append(row)  # no observation: the first
    joined = [pieces[0]]
    for piece in pieces[1:]:
        last = joined[-1]
        alike = piece.vectors and last.vectors
        if alike and np.linalg.norm(piece.mean() - last.mean()) <= threshold:
            last.times += piece.times
            last.vectors += piece.vectors
            last.rows += piece.rows
            continue
        joined.append(piece)
    return [p for p in joined if p.rows]


def cluster(
    means: np.ndarray, weights: np.ndarray, apart: np.ndarray, threshold: float
) -> np.ndarray:
    """Cluster labels by average linkage over ``means`` (n, d) with ``weights`` (n,) observations
    each; pairs marked in ``apart`` (n, n) never share a cluster, nor do clusters that hold
    such a pair. Merging stops at ``threshold``."""
    n = len(means)
    distance = np.linalg.norm(means[:, None] - means[None], axis=-1)
    apart = apart.copy()
    np.fill_diagonal(apart, True)
    weights = weights.astype(np.float64).copy()
    labels = np.arange(n)
    alive = np.ones(n, bool)
    while True:
        masked = np.where(apart | ~alive[:, None] | ~alive[None], np.inf, distance)
        i, j = np.unravel_index(int(np.argmin(masked)), masked.shape)
        if not masked[i, j] <= threshold:
            return labels
        i, j = min(i, j), max(i, j)
        total = weights[i] + weights[j]
        distance[i] = distance[:, i] = (weights[i] * distance[i] + weights[j] * distance[j]) / total
        apart[i] = apart[:, i] = apart[i] | apart[j]
        weights[i] = total
        alive[j] = False
        labels[labels == j] = i


def _overlap(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return (lo[:, None] <= hi[None]) & (lo[None] <= hi[:, None])


@dataclass
class People:
    """Assigns ``person_id`` to each finished video's rows (``assign``), video by video.

    With the ``run`` scope, people are kept across the videos of the run (a gallery of
    each person's mean vector), so the same participant filmed in several sessions keeps
    one id; videos are matched in the order ``assign`` gets them (the runner's: input order).
    """

    settings: ReidSettings = field(default_factory=ReidSettings)
    gallery: list[np.ndarray] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)

    def assign(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Split tracks, set ``track_id``/``person_id`` of the ``ok`` rows; other rows unchanged."""
        faces = [r for r in rows if r.get("status") == "ok" and r.get("track_id") is not None]
        tracks: dict[int, list[dict[str, Any]]] = {}
        for row in sorted(faces, key=lambda r: (r["start_s"], r["segment"])):
            tracks.setdefault(int(row["track_id"]), []).append(row)
        threshold = self.settings.threshold
        pieces = [p for track in tracks.values() for p in split_track(track, threshold)]
        next_track = max(tracks, default=-1) + 1
        seen: set[int] = set()
        for piece in pieces:
            if piece.track_id in seen:
                piece.track_id, next_track = next_track, next_track + 1
            seen.add(piece.track_id)
        people = self._people(pieces)
        for piece, person in zip(pieces, people, strict=True):
            for row in piece.rows:
                row["track_id"] = piece.track_id
                row["person_id"] = person
        for row in rows:
            row.pop(EMBEDDINGS_KEY, None)
        return rows

    def _people(self, pieces: list[_Piece]) -> list[int]:
        """A person number per piece: per video in order of first appearance (then of the lowest
        track id), or the gallery's."""
        if not pieces:
            return []
        seen = np.array([bool(p.vectors) for p in pieces])
        dim = next((len(p.vectors[0]) for p in pieces if p.vectors), 1)
        means = np.stack([p.mean() if p.vectors else np.zeros(dim) for p in pieces])
        weights = np.array([max(len(p.vectors), 1) for p in pieces])
        first = np.array([min(p.times) if p.times else p.rows[0]["start_s"] for p in pieces])
        last = np.array([max(p.times) if p.times else p.rows[-1]["end_s"] for p in pieces])
        apart = _overlap(first, last) | ~seen[:, None] | ~seen[None]
        labels = cluster(means, weights, apart, self.settings.threshold)
        # Ties at first appearance follow the track numbering (faces in the order first found),
        # not the iteration order of a set of labels.
        tracks = np.array([p.track_id for p in pieces])
        order = sorted(
            set(labels.tolist()),
            key=lambda c: (first[labels == c].min(), tracks[labels == c].min()),
        )
        if self.settings.scope == "video":
            number = {c: k for k, c in enumerate(order)}
            return [number[c] for c in labels.tolist()]
        number = self._match(
            [(means[labels == c] * weights[labels == c, None]).sum(0) for c in order],
            [int(weights[labels == c].sum()) for c in order],
            [bool(seen[labels == c].any()) for c in order],
        )
        return [number[order.index(c)] for c in labels.tolist()]

    def _match(self, sums: list[np.ndarray], counts: list[int], seen: list[bool]) -> list[int]:
        """Gallery ids for a video's people (vector sums and counts): one-to-one matches under
        the threshold, new ids for the rest; the gallery's means move with each match."""
        ids = [-1] * len(sums)
        known = [k for k in range(len(sums)) if seen[k]]
        filled = [g for g in range(len(self.gallery)) if self.counts[g]]
        if known and filled:
            means = np.stack([self.gallery[g] / self.counts[g] for g in filled])
            video = np.stack([sums[k] / counts[k] for k in known])
            cost = np.linalg.norm(video[:, None] - means[None], axis=-1)
            for r, c in zip(*linear_sum_assignment(cost), strict=True):
                if cost[r, c] <= self.settings.threshold:
                    ids[known[r]] = filled[c]
        for k in range(len(sums)):
            if ids[k] < 0:
                ids[k] = len(self.gallery)
                self.gallery.append(np.zeros_like(sums[k]))
                self.counts.append(0)
            if seen[k]:
                self.gallery[ids[k]] = self.gallery[ids[k]] + sums[k]
                self.counts[ids[k]] += counts[k]
        return ids

"""How far apart the face embeddings of one person and of different people are, and their cost.

Makes the test videos of ``tests/reid_helpers.py`` (the astronaut and the six people
of insightface's group photo, each shown for 1 s shots at one screen position, then
again framed differently), runs the media chain with re-identification embeddings
on them (dlib detector, 1 s segments), and prints the distances between single
frames (what splits a track) and between shots' mean vectors (what clusters tracks
into people), same person versus different people, with the embedding time per face.

Usage: ``python benchmarks/reid_distances.py``
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmadfer_cli.faces import create_detector
from mmadfer_cli.faces.embedding import FaceEmbedder
from mmadfer_cli.run.chunk import ChunkJob, media_source
from mmadfer_cli.run.clips import ClipSettings
from mmadfer_cli.run.reid import DEFAULT_THRESHOLD, EMBEDDED_FRAMES, with_embeddings
from tests.reid_helpers import (
    ASTRONAUT_FACE,
    GROUP_FACES,
    astronaut,
    group,
    write_video,
)


def _spread(values: np.ndarray) -> str:
    return (
        f"min {values.min():.3f}  p1 {np.percentile(values, 1):.3f}  mean {values.mean():.3f}  "
        f"p99 {np.percentile(values, 99):.3f}  max {values.max():.3f}  (n={len(values)})"
    )


def main() -> None:
    photo, face = group(), astronaut()
    people = [(face, ASTRONAUT_FACE), *((photo, box) for box in GROUP_FACES)]
    # Three framings per person: centred, wider and shifted, closer and shifted the other way.
    framings = [(2.0, 0.0), (2.6, 0.1), (1.7, -0.08)]
    shots = [(p, box, 1.0, zoom, shift) for zoom, shift in framings for p, box in people]
    labels = [k for _ in framings for k in range(len(people))]
    settings = ClipSettings(window_s=1.0, detector="dlib")
    open_source, _ = media_source(settings, lambda: create_detector("dlib"))
    source = with_embeddings(open_source, FaceEmbedder, EMBEDDED_FRAMES)()
    vectors, owners, shot_of = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "people.mp4", shots)
        started = time.perf_counter()
        for segment in source(video, ChunkJob(0, 1)):
            for clip in segment.faces:
                assert clip.embeddings is not None
                vectors += list(clip.embeddings.vectors)
                owners += [labels[segment.segment.index]] * len(clip.embeddings.slots)
                shot_of += [segment.segment.index] * len(clip.embeddings.slots)
        chain_s = time.perf_counter() - started
    vectors_a, owners_a, shots_a = np.array(vectors), np.array(owners), np.array(shot_of)
    print(f"{len(shots)} shots of {len(people)} people; {len(vectors_a)} embedded frames")
    distance = np.linalg.norm(vectors_a[:, None] - vectors_a[None], axis=-1)
    same = owners_a[:, None] == owners_a[None]
    upper = np.triu(np.ones_like(same), 1)
    print("single frames, same person:      ", _spread(distance[same & upper]))
    print("single frames, different people: ", _spread(distance[~same & upper]))
    found = sorted(set(shots_a.tolist()))
    means = np.stack([vectors_a[shots_a == s].mean(0) for s in found])
    who = np.array([labels[s] for s in found])
    distance = np.linalg.norm(means[:, None] - means[None], axis=-1)
    same = who[:, None] == who[None]
    upper = np.triu(np.ones_like(same), 1)
    print("shot means, same person:         ", _spread(distance[same & upper]))
    print("shot means, different people:    ", _spread(distance[~same & upper]))
    closest = np.where(same, np.inf, distance)
    i, j = np.unravel_index(int(np.argmin(closest)), closest.shape)
    print(f"closest different people: person {who[i]} and {who[j]} at {closest[i, j]:.3f}")
    print(f"default threshold {DEFAULT_THRESHOLD}")

    embedder = FaceEmbedder()
    crops = np.random.default_rng(0).integers(0, 255, (32, 224, 224, 3), dtype=np.uint8)
    crops[:] = np.asarray(face.crop((130, 30, 311, 211)).resize((224, 224)))
    embedder.embed(crops[:2])
    started = time.perf_counter()
    embedder.embed(crops)
    per_face = (time.perf_counter() - started) / len(crops)
    print(
        f"embedding: {1000 * per_face:.0f} ms per face (batch of {len(crops)}, landmarks, "
        f"alignment, descriptor); media chain with embeddings {chain_s:.1f} s for "
        f"{len(shots)} s of video"
    )


if __name__ == "__main__":
    main()

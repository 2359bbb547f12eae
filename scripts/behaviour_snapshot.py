"""Save the tables of a fixed set of annotate runs, or compare two saved sets.

A restructuring of the package must not change behaviour: run ``save`` before
the first move and after the last one, then ``compare`` the two folders; every
table (rows and metadata) and every CSV byte must be equal. The runs cover the
sample videos, a folder with a broken file, a file cut short, a no-face video
and a multi-person video, in Parquet and CSV, with chunks, through the local
engine, the Ray engine (when Ray is installed) and the Python API.

    python scripts/behaviour_snapshot.py save /tmp/before
    python scripts/behaviour_snapshot.py compare /tmp/before /tmp/after
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUNS: dict[str, tuple[str, list[str]]] = {
    # name -> (inputs, extra options); every run also gets the tiny checkpoint
    "samples.parquet": ("samples", []),
    "mixed.parquet": ("mixed", ["--chunk", "3"]),
    "mixed.csv": ("mixed", ["--chunk", "3"]),
    "mixed_noreid.jsonl": ("mixed", ["--no-reid", "--window", "2"]),
    "mixed_ray.parquet": ("mixed", ["--chunk", "3", "--engine", "ray"]),
}


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def make_inputs(root: Path) -> dict[str, Path]:
    """The sample videos, and a mixed folder of odd and broken inputs made from them."""
    samples = root / "samples"
    shutil.copytree(REPO / "sample_videos", samples)
    mixed = root / "mixed"
    mixed.mkdir()
    shutil.copy(samples / "group_conversation.mp4", mixed / "group.mp4")
    shutil.copy(samples / "single_speaker.mp4", mixed / "speaker.mp4")
    (mixed / "not_a_video.mp4").write_text("this is not a video\n")
    whole = (samples / "silent_astronaut.mp4").read_bytes()
    (mixed / "cut_short.mp4").write_bytes(whole[: len(whole) // 2])
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=4",
            "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
            str(mixed / "no_face.mp4"))  # fmt: skip
    return {"samples": Path("samples"), "mixed": Path("mixed")}  # as given: relative to root


def tiny_checkpoint(root: Path) -> Path:
    """A tiny random model with open fusion gates, so that audio and faces both move the rows."""
    import torch

    from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint

    torch.manual_seed(0)
    model = build_model(MMADFERConfig.tiny())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "all_gate" in name:
                p.fill_(0.5)
    path = root / "tiny.safetensors"
    save_checkpoint(model, path)
    return path


def save(dest: Path) -> None:
    """Run every case into ``dest`` (tables, exit codes and the API's table)."""
    dest.mkdir(parents=True, exist_ok=False)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inputs = make_inputs(root)
        checkpoint = tiny_checkpoint(root)
        (dest / "weights.sha256").write_text(_weights_sha256(checkpoint) + "\n")
        env = {**os.environ, "MMADFER_HOME": str(root / "home")}
        codes = {}
        for name, (which, extra) in RUNS.items():
            if "ray" in extra:
                try:
                    import ray  # noqa: F401
                except ImportError:
                    print(f"skip {name}: Ray is not installed")
                    continue
            cmd = [sys.executable, "-m", "mmadfer_cli", "annotate", str(inputs[which]),
                   "--out", str(dest / name), "--checkpoint", str(checkpoint),
                   "--device", "cpu", "--workers", "2", "-q", *extra]  # fmt: skip
            done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
            codes[name] = done.returncode
            print(f"{name}: exit {done.returncode}")
        (dest / "exit_codes.json").write_text(json.dumps(codes, indent=1, sort_keys=True))
        os.environ["MMADFER_HOME"] = env["MMADFER_HOME"]
        os.chdir(root)
        from mmadfer_cli import annotate

        df = annotate(inputs["mixed"], checkpoint=checkpoint, device="cpu", workers=2, chunk=3)
        df.attrs["mmadfer"] = _stable(df.attrs["mmadfer"])
        df.to_pickle(dest / "api.pkl")


def _stable(meta: dict) -> dict:
    """Metadata without what names the machine's temporary paths, and without the checkpoint
    file's checksum: safetensors writes its metadata in a different order in each process, so
    the weights are compared by ``weights.sha256`` instead."""
    meta.get("settings", {}).pop("face_models", None)
    meta.get("model", {}).pop("sha256", None)
    return meta


def _weights_sha256(path: Path) -> str:
    """A checksum of the checkpoint's tensors alone."""
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(path), "pt") as f:
        for key in sorted(f.keys()):
            digest.update(key.encode() + f.get_tensor(key).numpy().tobytes())
    return digest.hexdigest()


def compare(before: Path, after: Path) -> int:
    """0 when every saved table is equal; prints each difference."""
    import pandas as pd
    import pyarrow.parquet as pq

    problems = []
    names = sorted(p.name for p in before.iterdir())
    if names != sorted(p.name for p in after.iterdir()):
        problems.append(f"different files: {names} vs {sorted(p.name for p in after.iterdir())}")
    for name in names:
        a, b = before / name, after / name
        if not b.exists():
            continue
        if name.endswith(".parquet"):
            ta, tb = pq.read_table(a), pq.read_table(b)
            if not ta.equals(tb):
                problems.append(f"{name}: rows differ")
            ma = _stable(json.loads(ta.schema.metadata[b"mmadfer"]))
            mb = _stable(json.loads(tb.schema.metadata[b"mmadfer"]))
            if ma != mb:
                problems.append(f"{name}: metadata differs")
        elif name.endswith(".pkl"):
            da, db = pd.read_pickle(a), pd.read_pickle(b)
            if not da.equals(db) or _stable(da.attrs["mmadfer"]) != _stable(db.attrs["mmadfer"]):
                problems.append(f"{name}: API table differs")
        elif a.read_bytes() != b.read_bytes():
            problems.append(f"{name}: bytes differ")
    for problem in problems:
        print(problem)
    print(f"{len(names)} outputs compared, {len(problems)} differences")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("save").add_argument("dest", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("before", type=Path)
    cmp.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "save":
        save(args.dest)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())

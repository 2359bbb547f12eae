"""``mmadfer train`` and ``mmadfer evaluate`` end to end on a tiny model and data set."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from mmadfer_cli.model import load_checkpoint
from tests.conftest import SAMPLE_VIDEOS
from tests.recipe_helpers import CLASSES, make_separable_set, write_tiny_encoders

runner = CliRunner()
CLASS_OPTION = ",".join(CLASSES)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    listing = make_separable_set(root / "data", clips_per_class=2, frames=18)
    image, audio = write_tiny_encoders(root / "encoders")
    out = root / "run"
    args = [
        "train",
        str(listing),
        "--val",
        str(listing),
        "--out",
        str(out),
        "--image-encoder",
        str(image),
        "--audio-encoder",
        str(audio),
        "--classes",
        CLASS_OPTION,
        "--tiny",
        "--epochs",
        "1",
        "--batch-size",
        "3",
        "--workers",
        "0",
        "--device",
        "cpu",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    # The log says what each pre-trained checkpoint gave, before training starts.
    said = " ".join(result.stderr.split())
    assert f"image encoder {image}: " in said and f"audio encoder {audio}: " in said
    return root, listing, out, args


def test_train_writes_a_model_that_evaluate_loads(trained):
    root, listing, out, _ = trained
    assert load_checkpoint(out / "best.safetensors").config.class_names == CLASSES
    report = root / "report"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(listing),
            "--checkpoint",
            str(out / "last.safetensors"),
            "--out",
            str(report),
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["clips"] == 6
    assert set(summary["per_class_recall"]) == set(CLASSES)
    with open(report / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6
    assert [r["label"] for r in rows] == [c for c in CLASSES for _ in range(2)]
    correct = sum(r["label"] == r["predicted"] for r in rows)
    assert summary["war"] == pytest.approx(correct / 6)
    for name in ("metrics.json", "confusion.csv", "confusion.png"):
        assert (report / name).is_file()


def test_trained_model_imports_into_the_cache(trained, tmp_path, monkeypatch):
    _, listing, out, _ = trained
    monkeypatch.setenv("MMADFER_HOME", str(tmp_path / "home"))
    result = runner.invoke(
        app, ["models", "import", str(out / "best.safetensors"), "--name", "mine"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(listing),
            "--out",
            str(tmp_path / "r"),
            "--workers",
            "0",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["model"] == "mine"


def test_train_resume_continues_and_refuses_other_classes(trained):
    _, _, out, args = trained
    more = [a if a != "1" else "2" for a in args] + ["--resume"]
    result = runner.invoke(app, more)
    assert result.exit_code == 0, result.output
    assert "resuming at epoch 2 of 2" in result.output
    with open(out / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    wrong = [*more[: more.index("--classes") + 1], "dfew", *more[more.index("--classes") + 2 :]]
    result = runner.invoke(app, wrong)
    assert result.exit_code == 2
    assert "was trained with classes" in result.output


def test_bad_data_lines_are_usage_errors(tmp_path, trained):
    _, _, out, _ = trained
    bad = tmp_path / "bad.txt"
    bad.write_text("nowhere 10 0\n")
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(bad),
            "--checkpoint",
            str(out / "last.safetensors"),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 2
    assert "line 1:" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given without a GPU")
def test_evaluate_and_train_refuse_cuda_without_a_gpu(tmp_path, trained):
    _, listing, out, train_args = trained
    checkpoint = str(out / "last.safetensors")
    for args in (
        ["evaluate", str(listing), "--checkpoint", checkpoint, "--out", str(tmp_path / "e")],
        [*train_args, "--out", str(tmp_path / "t")],
    ):
        result = runner.invoke(app, [*args, "--device", "cuda"])
        assert result.exit_code == 2, result.output
        assert "no CUDA GPU" in result.output


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_evaluate_video_csv_through_the_face_stage(trained, tmp_path):
    _, _, out, _ = trained
    video = SAMPLE_VIDEOS / "single_speaker.mp4"
    videos = tmp_path / "videos.csv"
    videos.write_text(
        f"video,start_s,end_s,label\n{video},0,3,happiness\n{video},3.5,6.5,2\n"
        f"{SAMPLE_VIDEOS / 'silent_astronaut.mp4'},0,2,sadness\n"
    )
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(videos),
            "--checkpoint",
            str(out / "last.safetensors"),
            "--out",
            str(tmp_path / "r"),
            "--workers",
            "0",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    with open(tmp_path / "r" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["line"], r["start_s"], r["label"]) for r in rows] == [
        ("2", "0.0", "happiness"),
        ("3", "3.5", "neutral"),
        ("4", "0.0", "sadness"),
    ]


@pytest.mark.slow
def test_two_process_torchrun_training(trained, tmp_path):
    """DDP through torchrun (gloo on the CPU): one log, one set of files, both processes agree."""
    _, _, _, args = trained
    out = tmp_path / "ddp"
    ddp_args = [*args[: args.index("--out") + 1], str(out), *args[args.index("--out") + 2 :]]
    ddp_args[ddp_args.index("--batch-size") + 1] = "2"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "-m",
        "mmadfer_cli",
        *ddp_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("epoch 1/1") == 1
    assert "x 2 processes" in result.stderr
    with open(out / "log.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1"]
    assert load_checkpoint(out / "last.safetensors").config.class_names == CLASSES


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_annotate_loads_the_trained_model(trained, tmp_path):
    _, _, out, _ = trained
    table = tmp_path / "rows.csv"
    result = runner.invoke(
        app,
        [
            "annotate",
            str(SAMPLE_VIDEOS / "silent_astronaut.mp4"),
            "--checkpoint",
            str(out / "last.safetensors"),
            "--out",
            str(table),
        ],
    )
    assert result.exit_code == 0, result.output
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert rows and all(r["label"] in CLASSES for r in rows if r["status"] == "ok")
    assert [c for c in rows[0] if c.startswith("prob_")] == [f"prob_{c}" for c in CLASSES]

"""The notebook API: ``annotate`` gives the CLI's rows and defaults; the helpers work on its table."""

from __future__ import annotations

import inspect
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
import typer
from matplotlib.figure import Figure
from typer.testing import CliRunner

from mmadfer_cli import annotate, plot_timeline, read_results, summarize
from mmadfer_cli.cli.annotate import annotate as annotate_command
from mmadfer_cli.cli.app import app
from mmadfer_cli.media.discover import PathNotFoundError
from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint
from mmadfer_cli.model.inference import Bfloat16Mode, Precision
from mmadfer_cli.run.clips import ClipSettings
from mmadfer_cli.run.options import UsageError
from mmadfer_cli.run.prepare import Prepared, prepare
from tests.conftest import SAMPLE_VIDEOS

FAST = {"detector": "dlib", "workers": 1, "batch_size": 4}


def _first_seconds(source: Path, out: Path, seconds: float) -> None:
    """The first ``seconds`` of a sample video (picture only), re-encoded with PyAV."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        for i, frame in enumerate(src.decode(vin)):
            if i >= seconds * vin.average_rate:
                break
            new = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
            new.pts, new.time_base = i, Fraction(1, int(vin.average_rate))
            dst.mux(vout.encode(new))
        dst.mux(vout.encode())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("api")
    torch.manual_seed(0)
    save_checkpoint(build_model(MMADFERConfig.tiny()), root / "tiny.safetensors")
    _first_seconds(SAMPLE_VIDEOS / "silent_astronaut.mp4", root / "astronaut.mp4", 2.0)
    return root / "astronaut.mp4", root / "tiny.safetensors"


def test_annotate_returns_the_rows_the_cli_writes(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    video, checkpoint = inputs
    df = annotate(video, checkpoint=checkpoint, **FAST)
    out = tmp_path / "results.parquet"
    args = ["annotate", str(video), "--out", str(out), "--checkpoint", str(checkpoint), "-q",
            "--detector", "dlib", "--workers", "1", "--batch-size", "4"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    cli = read_results(out)
    assert (df["status"] == "ok").any() and df["video"].tolist() == [str(video)] * len(df)
    pd.testing.assert_frame_equal(df, cli, check_exact=False, atol=1e-5)
    assert df.attrs["mmadfer"]["settings"] == cli.attrs["mmadfer"]["settings"]
    assert df.attrs["mmadfer"]["model"] == cli.attrs["mmadfer"]["model"]
    # The notebook helpers work on it directly.
    people = summarize(df)
    assert len(people) == df.loc[df["status"] == "ok", "track_id"].nunique() >= 1
    fig = plot_timeline(df, str(video))
    assert isinstance(fig, Figure) and len(fig.axes) == 1 + len(people)
    probs = df[[c for c in df.columns if c.startswith("prob_")]].to_numpy(float)
    np.testing.assert_allclose(probs[df["status"] == "ok"].sum(axis=1), 1.0, atol=1e-5)


def test_annotate_has_the_cli_defaults() -> None:
    options = {
        p.name: p.default.default
        for p in inspect.signature(annotate_command).parameters.values()
        if isinstance(p.default, typer.models.OptionInfo) and p.default.default is not ...
    }
    api = inspect.signature(annotate).parameters
    cli_only = {
        "fmt",
        "resume",
        "quiet",
        "debug",
        "verbose",
        "stats",
    }  # writing files and printing: not the API's business
    assert set(options) - cli_only <= set(api)
    for name in set(options) - cli_only:
        default = options[name]
        assert api[name].default == (tuple(default) if isinstance(default, list) else default), name
    assert len(set(options) - cli_only) >= 15


def test_annotate_raises_for_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nowhere\.mp4") as raised:
        annotate(tmp_path / "nowhere.mp4")
    assert isinstance(raised.value.__cause__, PathNotFoundError)


def test_bfloat16_runs_the_way_of_the_device_and_records_it(inputs: tuple[Path, Path]) -> None:
    _, checkpoint = inputs
    cpu = torch.device("cpu")

    def run(precision: Precision, bfloat16: Bfloat16Mode | None = None) -> Prepared:
        settings = ClipSettings(detector="dlib")
        return prepare(settings, model=None, checkpoint=checkpoint, device=cpu,
                       precision=precision, bfloat16=bfloat16)  # fmt: skip

    reference, autocast, weights = run("float32"), run("bfloat16"), run("bfloat16", "weights")
    assert "bfloat16_mode" not in reference.run.settings  # float32 records what it always did
    assert autocast.run.settings["bfloat16_mode"] == "autocast"  # the CPU's faster way
    assert weights.run.settings["precision"] == "bfloat16"
    assert weights.run.settings["bfloat16_mode"] == "weights"
    clips = [torch.randint(0, 256, (16, 3, 224, 224), dtype=torch.uint8) for _ in range(3)]
    fbanks = [torch.randn(512, 128) for _ in range(3)]
    expected = reference.stages.predict(clips, fbanks)
    for low in (autocast, weights):
        probs = low.stages.predict(clips, fbanks)
        assert probs.shape == expected.shape and not np.array_equal(probs, expected)
        np.testing.assert_allclose(probs, expected, atol=0.02)


def test_annotate_with_out_writes_resumes_warns_and_shows_progress(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The notebook run is the command's run: with out= the rows are written as each video
    # finishes, a second call with the same out resumes, and the whole table comes back.
    video, checkpoint = inputs
    folder = tmp_path / "videos"
    folder.mkdir()
    first, second, broken = folder / "a.mp4", folder / "b.mp4", folder / "broken.mp4"
    first.write_bytes(video.read_bytes())
    broken.write_text("not a video")
    out = tmp_path / "results"
    with pytest.warns(
        UserWarning, match=r"1 video failed or damaged \(its rows say why\).*broken\.mp4"
    ):
        done = annotate(folder, out=f"{out}/", checkpoint=checkpoint, **FAST)
    parts = sorted(out.glob("*.parquet"))
    assert len(parts) == 2 and set(done["video"]) == {str(first), str(broken)}
    shown = " ".join(capsys.readouterr().err.split())
    assert "2/2 videos" in shown  # the progress bar's last state
    written = {p: p.stat().st_mtime_ns for p in parts}
    second.write_bytes(video.read_bytes())
    with pytest.warns(UserWarning, match="broken"):  # the earlier failure is still reported
        both = annotate(folder, out=f"{out}/", checkpoint=checkpoint, **FAST)
    assert "1 new video, 2 already done" in " ".join(capsys.readouterr().err.split())
    assert all(p.stat().st_mtime_ns == t for p, t in written.items())  # not done again
    assert set(both["video"]) == {str(first), str(second), str(broken)}
    pd.testing.assert_frame_equal(
        both[both["video"] == str(first)].reset_index(drop=True),
        done[done["video"] == str(first)].reset_index(drop=True),
    )
    with pytest.warns(UserWarning, match="broken"):
        annotate(folder, out=f"{out}/", checkpoint=checkpoint, progress=False, **FAST)
    assert capsys.readouterr().err == ""  # progress=False: silent

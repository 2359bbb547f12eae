"""``mmadfer doctor``: what this installation can do, checked by doing it.

Versions, devices, decoders, face detectors, re-identification's face
embedder and imported models, then the
whole annotate pipeline on one sample video with an untrained tiny model,
with per-stage timings. Nothing is written: no results file, no model import.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import typer
from rich.console import Console
from rich.markup import escape

import mmadfer_cli
from mmadfer_cli.cli.choices import Detector, Engine, device_option, plain
from mmadfer_cli.cli.engine_options import ENGINE_HELP, RAY_ADDRESS_HELP
from mmadfer_cli.faces import FaceDetector, create_detector, detector_weights, mtcnn_kernels
from mmadfer_cli.faces.crops import crop_faces
from mmadfer_cli.faces.embedding import FaceEmbedder, weights_sha256
from mmadfer_cli.faces.insightface_backend import default_pack_dir, find_pack
from mmadfer_cli.faces.mtcnn_weights import convert, source_files
from mmadfer_cli.media.demo_video import write_demo_video
from mmadfer_cli.model import MMADFERConfig, build_model
from mmadfer_cli.model.devices import resolve_device
from mmadfer_cli.model.inference import cast_weights, model_predictor, resolve_precision
from mmadfer_cli.model.registry import home, list_models
from mmadfer_cli.plural import counted
from mmadfer_cli.run.clips import ClipSettings
from mmadfer_cli.run.engines.local import worker_threads
from mmadfer_cli.run.stage_timing import time_stages

SAMPLE_VIDEO = (
    Path(mmadfer_cli.__file__).resolve().parent.parent / "sample_videos" / "single_speaker.mp4"
)
_MODULES = (
    "torch",
    "numpy",
    "pyarrow",
    "av",
    "insightface",
    "onnxruntime",
    "dlib",
    "typer",
    "rich",
)
# Packages doctor names but never imports: what mmadfer takes from them instead.
_NOT_IMPORTED = {"mtcnn": "its weight files only, never imported"}
_out = Console()


def _ok(label: str, detail: str) -> None:
    _out.print(f"  [green]ok[/]    {label}: {escape(detail)}")


def _bad(label: str, detail: str) -> None:
    _out.print(f"  [red]FAIL[/]  {label}: {escape(detail)}")


def _note(label: str, detail: str) -> None:
    _out.print(f"  [yellow]note[/]  {label}: {escape(detail)}")


def _check(label: str, work: Callable[[], str]) -> bool:
    try:
        detail = work()
    except Exception as exc:
        _bad(label, f"{type(exc).__name__}: {exc}")
        return False
    _ok(label, detail)
    return True


def _versions() -> None:
    _out.print("[bold]Versions[/]")
    _out.print(
        f"  mmadfer {mmadfer_cli.__version__}, Python {platform.python_version()} on {platform.platform()}"
    )
    found = []
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
            version = getattr(module, "__version__", None) or importlib.metadata.version(name)
            found.append(f"{name} {version}")
        except Exception as exc:
            found.append(f"{name} [red]unavailable ({escape(type(exc).__name__)})[/]")
    for name, why in _NOT_IMPORTED.items():
        try:
            found.append(f"{name} {importlib.metadata.version(name)} ({why})")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} [red]not installed[/] ({why})")
    _out.print("  " + ", ".join(found))


def _devices(device: str) -> None:
    _out.print("[bold]Devices[/]")
    _out.print(f"  CPU: {os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads")
    cuda = torch.version.cuda or "none"
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            _out.print(
                f"  cuda:{i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, compute {p.major}.{p.minor}, "
                f"bfloat16 {'yes' if torch.cuda.is_bf16_supported() else 'no'} (CUDA {cuda})"
            )
    else:
        _out.print(f"  no CUDA GPU visible to PyTorch (CUDA build: {cuda})")
    if torch.backends.mps.is_available():
        _out.print("  mps: this Mac's GPU (Metal Performance Shaders), float32 only")
    elif torch.backends.mps.is_built():
        _out.print("  no Apple GPU (MPS) available: it needs macOS 12.3 or newer")
    try:
        import onnxruntime

        _out.print(f"  onnxruntime providers: {', '.join(onnxruntime.get_available_providers())}")
    except Exception as exc:
        _out.print(f"  onnxruntime: unavailable ({escape(str(exc))})")
    _plan(device)


def _plan(device: str) -> None:
    """The device and precision that ``annotate`` with this ``--device`` (and ``--precision
    auto``) runs on, and why that precision."""
    try:
        torch_device = resolve_device(device)
    except ValueError as exc:
        _bad("device", str(exc))
        return
    precision = resolve_precision("auto", torch_device)
    if torch_device.type == "cuda":
        why = "the GPU computes bfloat16" if precision == "bfloat16" else "no bfloat16 on this GPU"
    elif torch_device.type == "mps":
        why = "MPS lacks some bfloat16 kernels"
    elif precision == "bfloat16":
        why = "the CPU computes bfloat16: AVX512-BF16 or AMX"
    else:
        why = "no native bfloat16 on this CPU"
    _ok("annotate", f"--device {device} runs on {torch_device} in {precision} ({why})")


def _decoders(video: Path) -> bool:
    _out.print(f"[bold]Decoders[/] (on {escape(str(video))})")

    def with_pyav() -> str:
        import av

        with av.open(str(video)) as container:
            frame = next(container.decode(video=0))
            audio = [s for s in container.streams if s.type == "audio"]
            sound = f", audio {audio[0].rate} Hz" if audio else ", no audio track"
            return f"{frame.width}x{frame.height}{sound}"

    return _check("PyAV", with_pyav)


def _detectors(
    video: Path, face_models: Path | None, device: str
) -> tuple[bool, np.ndarray, np.ndarray]:
    """Each detector on a sample frame; healthy when MTCNN, the default, works. Also the frame
    and MTCNN's boxes in it (none when it failed), for the embedder's check."""
    _out.print("[bold]Face detectors[/]")
    from mmadfer_cli.media.video import open_video

    with open_video(video) as v:
        frame = v.frames([v.info.frame_count // 2])
    found_by: dict[str, np.ndarray] = {}

    def run(name: str, on: str | torch.device = "cpu") -> str:
        detector = create_detector(name, face_models, download=False, device=on)
        found = found_by[name] = detector.detect(frame)[0]
        weights = detector_weights(detector)
        checksum = f", weights sha256 {weights[:12]}" if weights else ""
        return f"{counted(len(found), 'face')} in a sample frame{checksum}"

    weights_ok = _check("mtcnn weights", _mtcnn_weights)
    loops = mtcnn_kernels.layer()
    if loops is None:
        _note("mtcnn cpu loops", "not compiled here (numba found no OpenMP or TBB library): on the "
              "CPU MTCNN runs its PyTorch forms, the same boxes, slower")  # fmt: skip
    else:
        _ok("mtcnn cpu loops", f"compiled ({loops})")
    mtcnn_ok = _check(
        f"mtcnn (default, --device {device})", lambda: run("mtcnn", resolve_device(device))
    )
    pack = find_pack(face_models)
    if pack is None:
        where = face_models or default_pack_dir()
        _note("insightface", f"no model pack at {where} (optional: --detector insightface)")
    else:
        _check(f"insightface ({pack})", lambda: run("insightface"))
    _check("dlib", lambda: run("dlib"))
    return weights_ok and mtcnn_ok, frame[0], found_by.get("mtcnn", np.zeros((0, 5)))


def _embeddings(frame: np.ndarray, faces: np.ndarray) -> bool:
    """Re-identification's face embedder (on in annotate by default) on the sample frame's
    largest face, or on the whole frame when it has none; timed warm, as in a run."""
    _out.print("[bold]Re-identification[/] (annotate's default; --no-reid goes without)")

    def run() -> str:
        height, width = frame.shape[:2]
        box = faces[:1, :4] if len(faces) else np.array([[0, 0, width, height]])
        crop = crop_faces([frame], box)
        embedder = FaceEmbedder()
        embedder.embed(crop)
        start = time.perf_counter()
        vectors = embedder.embed(crop)
        took = 1000 * (time.perf_counter() - start)
        return (
            f"{embedder.name}, weights sha256 {weights_sha256()[:12]}: {vectors.shape[1]} "
            f"numbers for the sample frame's {'face' if len(faces) else 'whole frame'} "
            f"in {took:.0f} ms"
        )

    return _check("face embeddings", run)


def _mtcnn_weights() -> str:
    """The MTCNN networks' weight files of the ``mtcnn`` package: found, the published bytes,
    and loadable as the detector loads them (read without importing the package)."""
    files = source_files()
    state = convert(files)
    values = sum(t.numel() for net in state.values() for t in net.values())
    return (
        f"{', '.join(f.name for f in files.values())} of the mtcnn "
        f"{importlib.metadata.version('mtcnn')} package found, sha256 as published, "
        f"loadable ({values:,} values; the package itself is never imported)"
    )


def _models() -> None:
    _out.print(f"[bold]Imported models[/] (in {escape(str(home()))})")
    records = list_models()
    if not records:
        _note("none", "import one with `mmadfer models import FILE` before `mmadfer annotate`")
    for r in records:
        _out.print(
            f"  {escape(r.name)}: {len(r.class_names)} classes, sha256 {r.sha256[:12]}, from {escape(r.source)}"
        )


def _pipeline(video: Path, device: str, detector: str, face_models: Path | None) -> bool:
    torch_device = resolve_device(device)
    precision = resolve_precision("auto", torch_device)
    _out.print(
        f"[bold]Pipeline[/] on {escape(video.name)} with an untrained tiny model, device "
        f"{torch_device}, {precision}"
    )
    torch.manual_seed(0)
    config = MMADFERConfig.tiny()
    model = cast_weights(build_model(config).eval().to(torch_device), precision)
    predict = model_predictor(model, torch_device, precision)
    settings = ClipSettings(detector=detector, face_models=face_models)

    def make_detector() -> FaceDetector:
        return create_detector(detector, face_models, download=False, device=torch_device)

    threads = worker_threads(1, torch_device)
    times = time_stages([video], settings, make_detector, predict, config.class_names,
                        workers=1, threads_per_worker=threads)  # fmt: skip
    (result,) = times.results
    if result.error is not None:
        _bad("pipeline", result.error)
        return False
    labels = Counter(r["label"] for r in result.rows if r["status"] == "ok")
    _ok(
        "pipeline",
        f"{counted(result.segments, 'segment')}, {counted(result.tracks, 'person track')}, "
        f"{counted(result.clips, 'face clip')}",
    )
    _out.print(
        "  Times are warm (each stage ran once before) and with the PyTorch threads a worker "
        "and the model get in `mmadfer annotate --workers 1`:"
    )
    for line in times.lines():
        _out.print(line)
    _out.print(
        f"  labels {dict(labels)}: [bold]meaningless[/], the model is untrained; this checks "
        "that every stage runs, not what it finds. No results file was written."
    )
    return True


def doctor(
    video: Path | None = typer.Option(
        None,
        "--video",
        help="Video to run the checks on.",
        show_default="the repository's sample video, else a short video made from "
        "insightface's sample photo",
    ),
    device: str = device_option("auto", "As annotate's --device."),
    detector: Detector = typer.Option(
        "auto", "--detector", help="Face detector for the pipeline run."
    ),
    face_models: Path | None = typer.Option(
        None,
        "--face-models",
        help="Folder of an unpacked insightface model pack.",
        show_default=False,
    ),
    engine: Engine = typer.Option(
        "local",
        "--engine",
        help=f"{ENGINE_HELP} With ray, doctor also checks the cluster: its nodes, and on each "
        "node that mmadfer imports, a model runs and the video reads (give --video on shared "
        "storage).",
    ),
    ray_address: str | None = typer.Option(
        None,
        "--ray-address",
        help=RAY_ADDRESS_HELP,
        show_default=False,
    ),
) -> None:
    """Check the installation: versions, devices, decoders, face detectors, face embeddings, models, and a timed pipeline run.

    Exit code 0 when everything needed to annotate works, 1 otherwise.
    """
    _versions()
    _devices(device)
    _models()
    with tempfile.TemporaryDirectory(prefix="mmadfer-doctor-") as tmp:
        if video is None:
            video = SAMPLE_VIDEO
            if not video.is_file():  # an installed package has no sample_videos/
                video = write_demo_video(Path(tmp) / "demo.mp4")
        elif not video.is_file():
            _bad("sample video", f"{video} not found; pass --video FILE")
            raise typer.Exit(1)
        healthy = _check_video(video, device, plain(detector) or "auto", face_models)
        if plain(engine) == "ray":
            healthy = _ray(ray_address, video) and healthy
    raise typer.Exit(0 if healthy else 1)


def _ray(address: str | None, video: Path) -> bool:
    """The cluster's nodes and resources, and a probe task on each node."""
    from mmadfer_cli.run.engines.ray.checks import probe_nodes
    from mmadfer_cli.run.engines.ray.connect import (
        RayUnavailableError,
        cluster_info,
        connect,
        disconnect,
    )

    _out.print("[bold]Ray cluster[/]")
    try:
        started = connect(address)
    except RayUnavailableError as exc:
        _bad("ray", str(exc))
        return False
    try:
        info = cluster_info()
        _ok(
            "cluster",
            f"{counted(len(info.nodes), 'node')}, {counted(info.cpus, 'CPU')}, "
            f"{counted(info.gpus, 'GPU')}, object store "
            f"{info.object_store_bytes / 2**30:.1f} GiB"
            + ("" if address or os.environ.get("RAY_ADDRESS") else " (a new local Ray)"),
        )
        for name, cpus, gpus, store in info.nodes:
            _out.print(
                f"    {escape(name)}: {cpus:g} CPUs, {gpus:g} GPUs, {store / 2**30:.1f} GiB store"
            )
        healthy = True
        for name, report in probe_nodes(str(video.resolve())):
            if isinstance(report, BaseException):
                first = str(report).strip().splitlines()[-1] if str(report).strip() else ""
                _bad(f"node {name}", f"{type(report).__name__}: {first}")
                healthy = False
            else:
                _ok(f"node {name}", report)
        return healthy
    finally:
        if started:
            disconnect()


def _check_video(video: Path, device: str, detector: str, face_models: Path | None) -> bool:
    """Decoders, detectors, the face embedder and a timed pipeline run on ``video``; True when
    all work (the pipeline runs without re-identification, so a broken embedder does not hide
    how the rest does)."""
    if not _decoders(video):
        return False
    healthy, frame, faces = _detectors(video, face_models, device)
    embedded = _embeddings(frame, faces)
    if healthy:
        try:
            healthy = _pipeline(video, device, detector, face_models)
        except Exception as exc:
            _bad("pipeline", f"{type(exc).__name__}: {exc}")
            healthy = False
    return healthy and embedded

"""``mmadfer evaluate`` and ``mmadfer train``: the paper's metrics and training recipe."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mmadfer_cli.cli.choices import Metric, device_option, plain
from mmadfer_cli.model.devices import resolve_device
from mmadfer_cli.plural import counted
from mmadfer_cli.recipe.labelled_data import DataError, VideoSpanClip

if TYPE_CHECKING:
    from mmadfer_cli.recipe.dataset import LabelledClipDataset

console = Console(stderr=True)

DATA_HELP = (
    "Labelled clips: an official annotation list (FRAME_FOLDER NUM_FRAMES LABEL per line) or a CSV "
    "with a header 'video,label' or 'video,start_s,end_s,label'. Labels are 0-based indices or class names."
)
AUDIO_TEMPLATE_HELP = (
    "Where each frame folder's WAV is, as a template with the fields {path}, {folder}, {parent}, "
    "{name} and {id} (name without leading zeros), e.g. '/data/dfew/raw_wav/{id}.wav'. "
    "Default: the official DFEW/MAFW naming. A missing WAV gives the all-zero filterbank."
)
ROOT_HELP = "Folder that relative paths in DATA are taken from. Default: DATA's own folder."


@contextmanager
def _progress() -> Iterator[Callable[[str, int, int], None]]:
    """A Rich progress bar on stderr; yields ``update(stage, done, total)``."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)
            if done >= total:
                progress.remove_task(tasks.pop(stage))

        yield update


def _say(message: str, every_process: bool = False) -> None:
    """One unwrapped line on stderr (paths may hold brackets: no markup); under torchrun
    only the first process speaks, unless ``every_process``."""
    if every_process or os.environ.get("RANK", "0") == "0":
        console.print(message, highlight=False, soft_wrap=True, markup=False)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _say(f"error: {message}", every_process=True)
    return typer.Exit(code)


def _class_names(spec: str) -> tuple[str, ...]:
    from mmadfer_cli.model.labels import DFEW_CLASSES, MAFW_CLASSES

    presets = {"dfew": DFEW_CLASSES, "mafw": MAFW_CLASSES}
    if spec.lower() in presets:
        return presets[spec.lower()]
    names = tuple(name.strip() for name in spec.split(",") if name.strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise _fail(
            f"--classes needs 'dfew', 'mafw' or at least two distinct comma-separated names, got {spec!r}"
        )
    return names


def _dataset(
    path: Path,
    class_names: Sequence[str],
    audio_template: str | None,
    root: Path | None,
    train: bool = False,
    cache: Path | None = None,
    **kwargs: Any,
) -> LabelledClipDataset:
    from mmadfer_cli.recipe.dataset import LabelledClipDataset
    from mmadfer_cli.recipe.labelled_data import read_labelled

    clips = read_labelled(path, class_names, audio_template, root)
    silent = sum(1 for c in clips if getattr(c, "wav", "") is None)
    if silent:
        _say(
            f"{path}: no WAV for {silent} of {counted(len(clips), 'clip')}; they get the zero "
            "filterbank"
        )
    spans = [c for c in clips if isinstance(c, VideoSpanClip)]
    loader = None
    if spans:
        from mmadfer_cli.recipe.video_spans import extract_span_clips

        with _progress() as update:
            loader = extract_span_clips(
                spans, progress=lambda d, t: update(f"faces in {path.name}", d, t), cache=cache
            )
    return LabelledClipDataset(clips, train=train, span_loader=loader, **kwargs)


def evaluate(
    data: Path = typer.Argument(..., help=DATA_HELP, show_default=False),
    model_name: str | None = typer.Option(
        None, "--model", "-m", help="Name of an imported model. Default: the only imported one."
    ),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="A checkpoint file (.pth or .safetensors) instead of an imported model.",
    ),
    out: Path = typer.Option(
        Path("evaluation"),
        "--out",
        "-o",
        help="Folder for metrics.json, confusion.csv, confusion.png and predictions.csv.",
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Clips per model call."),
    device: str = device_option(
        "auto",
        "auto: a CUDA GPU if available, else a Mac's GPU, else the CPU. cuda:N: the GPU of index N.",
    ),
    workers: int = typer.Option(2, "--workers", min=0, help="Data-loading worker processes."),
    audio_template: str | None = typer.Option(None, "--audio-template", help=AUDIO_TEMPLATE_HELP),
    root: Path | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """WAR and UAR of a model on labelled clips, as the paper reports them.

    Writes per-class recall and the confusion matrix (CSV and PNG) and every
    clip's prediction to --out, and prints the metrics as JSON on stdout.
    """
    from mmadfer_cli.model.registry import resolve_model
    from mmadfer_cli.recipe.evaluate import (
        compute_metrics,
        predict,
        write_predictions,
        write_report,
    )

    try:
        model, info = resolve_model(model_name, checkpoint)
    except (
        ValueError,
        FileNotFoundError,
    ) as error:  # registry and checkpoint errors are ValueErrors
        raise _fail(str(error)) from None
    class_names = tuple(info.class_names)
    try:
        dataset = _dataset(
            data,
            class_names,
            audio_template,
            root,
            cache=out / "spans",
            image_size=model.config.image_size,
        )
    except DataError as error:
        raise _fail(str(error)) from None
    try:
        target = resolve_device(device)
    except ValueError as error:
        raise _fail(str(error)) from None
    model.to(target)
    _say(f"evaluating {info.name} on {counted(len(dataset), 'clip')} from {data} ({target})")
    try:
        with _progress() as update:
            result = predict(
                model,
                dataset,
                batch_size,
                target,
                workers,
                progress=lambda done, total: update("clips", done, total),
            )
    except DataError as error:
        raise _fail(str(error), code=1) from None
    metrics = compute_metrics(result.targets, result.predictions, class_names)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.csv", result, dataset.clips, class_names)
    summary = write_report(
        metrics, out, {"data": str(data), "model": info.name, "sha256": info.sha256}
    )
    _say(
        f"WAR {summary['war_percent']:.2f}  UAR {summary['uar_percent']:.2f}  "
        f"({counted(metrics.total, 'clip')}; files in {out})"
    )
    sys.stdout.write(json.dumps(summary) + "\n")


def train(
    data: Path = typer.Argument(..., help=DATA_HELP, show_default=False),
    val: Path = typer.Option(
        ..., "--val", help="Validation clips, same formats as DATA.", show_default=False
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        show_default=False,
        help="Folder for checkpoint.pt (resumable), last/best.safetensors, log.csv, learning_curve.png.",
    ),
    image_encoder: Path | None = typer.Option(
        None,
        "--image-encoder",
        help="MAE-Face ViT-B checkpoint (mae_face_pretrain_vit_base.pth, weights under 'model'). "
        "Needed unless --resume.",
    ),
    audio_encoder: Path | None = typer.Option(
        None,
        "--audio-encoder",
        help="AudioMAE ViT-B checkpoint (audiomae_pretrained.pth, weights under 'model'). Needed unless --resume.",
    ),
    classes: str = typer.Option(
        "dfew",
        "--classes",
        help="'dfew', 'mafw' or comma-separated class names, in label-index order.",
    ),
    epochs: int = typer.Option(
        25, "--epochs", min=1, help="Epochs; also the cosine schedule's length."
    ),
    batch_size: int = typer.Option(
        8, "--batch-size", min=1, help="Clips per step (over all GPUs)."
    ),
    lr: float = typer.Option(1e-4, "--lr", help="AdamW learning rate."),
    weight_decay: float = typer.Option(1e-2, "--weight-decay", help="AdamW weight decay."),
    brightness: float = typer.Option(
        0.5, "--brightness", min=0.0, help="Brightness jitter strength."
    ),
    select: Metric = typer.Option(
        "war", "--select", help="Validation metric that picks best.safetensors."
    ),
    temporal_layers: int = typer.Option(
        1, "--temporal-layers", min=1, help="Temporal transformer layers."
    ),
    workers: int = typer.Option(
        4, "--workers", min=0, help="Data-loading worker processes per GPU."
    ),
    seed: int = typer.Option(
        1, "--seed", help="Seed for initialisation, shuffling and augmentation."
    ),
    amp: bool = typer.Option(
        False,
        "--amp/--no-amp",
        help="Mixed precision on CUDA (bf16, or fp16 with scaling): faster, but the official "
        "recipe trains in float32.",
    ),
    device: str = device_option(
        "auto",
        "auto: a CUDA GPU if available, else the CPU (training does not run on a Mac's GPU). "
        "cuda:N: the GPU of index N.",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue from --out/checkpoint.pt at the next epoch. \\[default: off]",
    ),
    tiny: bool = typer.Option(
        False, "--tiny", help="Use the tiny test configuration (smoke tests only). \\[default: off]"
    ),
    audio_template: str | None = typer.Option(None, "--audio-template", help=AUDIO_TEMPLATE_HELP),
    root: Path | None = typer.Option(None, "--root", help=ROOT_HELP),
) -> None:
    """Train MMA-DFER with the paper's recipe, from MAE-Face and AudioMAE encoders.

    Defaults are the official ones (train_DFEW.sh). Multi-GPU: run it under
    'torchrun --nproc-per-node N'. The .safetensors files load in 'mmadfer
    annotate', 'mmadfer evaluate --checkpoint' and 'mmadfer models import'.
    """
    import torch

    from mmadfer_cli.model import MMADFERConfig, build_model
    from mmadfer_cli.model.pretrained import PretrainedError, load_pretrained_encoders
    from mmadfer_cli.recipe.train import RESUME_FILE, TrainSettings
    from mmadfer_cli.recipe.train import train as run_training

    class_names = _class_names(classes)
    if resume:
        state_path = out / RESUME_FILE
        if not state_path.is_file():
            raise _fail(f"nothing to resume: {state_path} does not exist")
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
        config = MMADFERConfig.from_dict(saved["model_config"])
        if config.class_names != class_names:
            raise _fail(
                f"{state_path} was trained with classes {', '.join(config.class_names)}; "
                f"--classes gives {', '.join(class_names)}"
            )
        del saved
        model = build_model(config)
    else:
        if image_encoder is None or audio_encoder is None:
            raise _fail(
                "--image-encoder and --audio-encoder are needed to start training (or use --resume)"
            )
        base = MMADFERConfig.tiny(class_names) if tiny else MMADFERConfig(class_names=class_names)
        config = MMADFERConfig.from_dict({**base.to_dict(), "temporal_layers": temporal_layers})
        torch.manual_seed(seed)
        model = build_model(config)
        try:
            reports = load_pretrained_encoders(model, image_encoder, audio_encoder, seed=seed)
        except PretrainedError as error:
            raise _fail(str(error)) from None
        for what, path, report in zip(
            ("image", "audio"), (image_encoder, audio_encoder), reports, strict=True
        ):
            _say(f"{what} encoder {path}: {report.describe()}")
    try:
        resolve_device(device, apple_gpu=False)  # fail before any data is read, with a reason
        common = {"image_size": config.image_size, "cache": out / "spans"}
        train_data = _dataset(
            data, class_names, audio_template, root, train=True, brightness=brightness, **common
        )
        val_data = _dataset(val, class_names, audio_template, root, **common)
    except (DataError, ValueError) as error:
        raise _fail(str(error)) from None
    settings = TrainSettings(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        brightness=brightness,
        select=plain(select),
        workers=workers,
        seed=seed,
        amp=amp,
        device=device,
    )
    try:
        with _progress() as update:
            run_training(
                model,
                train_data,
                val_data,
                out,
                settings,
                resume=resume,
                log=_say,
                progress=update,
            )
    except (DataError, ValueError) as error:
        raise _fail(str(error), code=1) from None
    _say(f"done: {out / 'best.safetensors'} and {out / 'last.safetensors'}")

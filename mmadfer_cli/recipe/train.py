"""The paper's training recipe (the official main.py and train_DFEW.sh).

Both encoders are frozen except what MMA-DFER adds to them (prompts,
position embeddings, fusion projections and gates); the projection, the
temporal transformer and the classifier are trained. AdamW (lr 1e-4, weight
decay 1e-2), cosine schedule over 25 epochs stepped once per epoch, batch 8,
cross-entropy. Every epoch writes a resumable checkpoint, ``last`` and (when
validation improves) ``best`` model files, a CSV log and a learning curve.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from mmadfer_cli.model.devices import resolve_device
from mmadfer_cli.model.inference import Precision, autocast, resolve_precision
from mmadfer_cli.plural import counted
from mmadfer_cli.recipe.dataset import LabelledClipDataset
from mmadfer_cli.recipe.evaluate import Metrics, compute_metrics, predict

# Substrings of the parameter names the official main.py trains inside the
# two encoders (everything outside them is trained).
OFFICIAL_TRAINABLE_IN_ENCODERS = (
    "our_classifier",
    "positional_embedding",
    "learnable_prompts",
    "pos_embed",
    "audio_proj",
    "temporal",
    "gate",
    "context_att",
    "learnable_q",
    "audio_att",
    "norm_xt",
    "norm_qs",
)
ENCODERS = ("image_encoder", "audio_model")
RESUME_FILE = "checkpoint.pt"
LOG_FIELDS = ("epoch", "lr", "train_loss", "train_war", "val_loss", "val_war", "val_uar", "seconds")


@dataclass
class TrainSettings:
    """The recipe's knobs; defaults are the paper's (train_DFEW.sh)."""

    epochs: int = 25
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-2
    brightness: float = 0.5
    select: str = "war"  # validation metric that picks the best epoch (the official code: accuracy)
    workers: int = 4
    seed: int = 1
    amp: bool = False  # mixed precision on CUDA; the official recipe trains in float32
    device: str = "auto"


def is_officially_trained(name: str) -> bool:
    """Whether the official recipe trains the parameter ``name`` (its substring rules)."""
    if not any(encoder in name for encoder in ENCODERS):
        return True
    return any(key in name for key in OFFICIAL_TRAINABLE_IN_ENCODERS)


def set_official_trainable(model: nn.Module) -> list[str]:
    """Freeze and unfreeze as the official recipe; returns the trained parameter names."""
    names = []
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(is_officially_trained(name))
        if parameter.requires_grad:
            names.append(name)
    return names


def _quiet(message: str) -> None:
    """Log sink of the non-main processes of a multi-GPU run."""


def _dist_info() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _save_model(model: nn.Module, path: Path) -> None:
    from mmadfer_cli.model import save_checkpoint

    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    save_checkpoint(model, tmp)
    os.replace(tmp, path)


def write_log(history: Sequence[dict], path: Path) -> None:
    """The per-epoch log as CSV (rewritten whole, so a resumed run has one clean file)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row[k] for k in LOG_FIELDS})


def plot_learning_curve(history: Sequence[dict], path: Path) -> None:
    """Loss (left axis) and WAR/UAR in percent (right axis) per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, loss_ax = plt.subplots(figsize=(8, 4.5))
    loss_ax.plot(epochs, [row["train_loss"] for row in history], "g-", label="train loss")
    loss_ax.plot(epochs, [row["val_loss"] for row in history], "y-", label="val loss")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("cross-entropy")
    metric_ax = loss_ax.twinx()
    metric_ax.plot(epochs, [100 * row["val_war"] for row in history], "b--", label="val WAR %")
    metric_ax.plot(epochs, [100 * row["val_uar"] for row in history], "r--", label="val UAR %")
    metric_ax.set_ylabel("percent")
    metric_ax.set_ylim(0, 100)
    handles = loss_ax.get_legend_handles_labels()[0] + metric_ax.get_legend_handles_labels()[0]
    loss_ax.legend(handles, [h.get_label() for h in handles], loc="center right")
    loss_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    model: nn.Module,
    train_data: LabelledClipDataset,
    val_data: LabelledClipDataset,
    out_dir: Path,
    settings: TrainSettings,
    resume: bool = False,
    log: Callable[[str], None] = print,
    progress: Callable[[str, int, int], None] | None = None,
    on_epoch_end: Callable[[int], None] | None = None,
) -> list[dict]:
    """Train ``model`` (already holding the pre-trained encoders) with the official recipe.

    ``progress(stage, done, total)`` is called after each batch; ``on_epoch_end(epoch)``
    after each epoch's files are written. Returns the per-epoch log.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world, rank, local_rank = _dist_info()
    device = resolve_device(settings.device, local_rank, apple_gpu=False)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if settings.batch_size % world:
        raise ValueError(f"batch size {settings.batch_size} is not divisible by {world} processes")
    main_process = rank == 0
    if not main_process:
        log = _quiet

    torch.manual_seed(settings.seed)
    trainable = set_official_trainable(model)
    model.to(device)
    core = model
    if world > 1:
        # the progressive prompts added after the last block never reach the loss
        model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device] if device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    parameters = [p for p in core.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)
    precision = resolve_precision("auto" if settings.amp else "float32", device)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "float16")
    criterion = nn.CrossEntropyLoss()

    history: list[dict] = []
    start_epoch = 0
    best = -math.inf
    resume_path = out_dir / RESUME_FILE
    if resume:
        if not resume_path.is_file():
            raise FileNotFoundError(f"nothing to resume: {resume_path} does not exist")
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        core.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        history = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        best = float(state["best"])
        log(f"resuming at epoch {start_epoch + 1} of {settings.epochs}")
    log(
        f"training {counted(len(trainable), 'parameter tensor')} "
        f"({sum(p.numel() for p in parameters):,} values) on {device}"
        + (f" x {world} processes" if world > 1 else "")
    )

    train_data.seed = settings.seed
    sampler = DistributedSampler(
        train_data, num_replicas=world, rank=rank, shuffle=True, seed=settings.seed
    )
    loader = DataLoader(
        train_data,
        batch_size=settings.batch_size // world,
        sampler=sampler,
        num_workers=settings.workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    if len(loader) == 0:
        raise ValueError(
            f"{counted(len(train_data), 'training clip')} make no full batch of "
            f"{settings.batch_size}"
        )

    for epoch in range(start_epoch, settings.epochs):
        started = time.monotonic()
        lr = optimizer.param_groups[0]["lr"]
        sampler.set_epoch(epoch)
        train_data.set_epoch(epoch)
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.float64)
        seen = torch.zeros((), device=device, dtype=torch.float64)
        for step, (images, labels, audio, _) in enumerate(loader):
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            audio = audio.to(device, non_blocking=True)
            with autocast(device, precision):
                logits = model(images, audio)
                loss = criterion(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach().double() * len(labels)
            correct += (logits.argmax(1) == labels).sum().double()
            seen += len(labels)
            if progress is not None and main_process:
                progress(f"epoch {epoch + 1}/{settings.epochs} train", step + 1, len(loader))
        if world > 1:
            for value in (loss_sum, correct, seen):
                dist.all_reduce(value)
        scheduler.step()

        row: dict = {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": float(loss_sum / seen),
            "train_war": float(correct / seen),
        }
        if main_process:
            metrics, val_loss = validate(
                core,
                val_data,
                settings,
                device,
                precision,
                progress,
                f"epoch {epoch + 1}/{settings.epochs} val",
            )
            row.update(
                val_loss=val_loss,
                val_war=metrics.war,
                val_uar=metrics.uar,
                seconds=round(time.monotonic() - started, 3),
            )
            history.append(row)
            score = metrics.war if settings.select == "war" else metrics.uar
            improved = score > best
            best = max(best, score)
            _save_model(core, out_dir / "last.safetensors")
            if improved:
                _save_model(core, out_dir / "best.safetensors")
            _atomic_save(
                {
                    "epoch": epoch,
                    "model": core.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "history": history,
                    "best": best,
                    "settings": asdict(settings),
                    "model_config": core.config.to_dict(),
                },
                resume_path,
            )
            write_log(history, out_dir / "log.csv")
            plot_learning_curve(history, out_dir / "learning_curve.png")
            log(
                f"epoch {epoch + 1}/{settings.epochs}  lr {lr:.3g}  train loss {row['train_loss']:.4f}  "
                f"val loss {val_loss:.4f}  WAR {100 * metrics.war:.2f}  UAR {100 * metrics.uar:.2f}"
                + ("  (best)" if improved else "")
            )
        if world > 1:
            dist.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    return history


def validate(
    model: nn.Module,
    data: LabelledClipDataset,
    settings: TrainSettings,
    device: torch.device,
    precision: Precision,
    progress: Callable[[str, int, int], None] | None,
    stage: str,
) -> tuple[Metrics, float]:
    """Validation metrics and mean cross-entropy with the test-time sampling."""
    result = predict(
        model,
        data,
        settings.batch_size,
        device,
        settings.workers,
        precision,
        (lambda done, total: progress(stage, done, total)) if progress else None,
    )
    loss = nn.functional.cross_entropy(result.logits, torch.as_tensor(result.targets)).item()
    return compute_metrics(result.targets, result.predictions, model.config.class_names), loss

"""The paper's metrics: WAR (accuracy) and UAR (mean per-class recall).

UAR is computed as the official code does: the mean of the diagonal of the
confusion matrix normalised by its rows (true classes). Rows of classes that
have no clip in the data are undefined there (0 / 0) and are left out of the
mean, which is what the official code's sklearn matrix does when a class is
absent from both labels and predictions.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmadfer_cli.model.inference import Precision, predict_logits


@dataclass(frozen=True)
class Metrics:
    """Confusion matrix (rows: true class, columns: predicted class) and its summaries."""

    class_names: tuple[str, ...]
    confusion: np.ndarray

    @property
    def total(self) -> int:
        return int(self.confusion.sum())

    @property
    def war(self) -> float:
        """Weighted average recall = accuracy, as a fraction."""
        if self.total == 0:
            return float("nan")
        return float(np.trace(self.confusion) / self.total)

    @property
    def recall(self) -> np.ndarray:
        """Per-class recall (fraction); NaN for classes with no clip."""
        support = self.confusion.sum(axis=1).astype(np.float64)
        diag = np.diag(self.confusion).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support > 0, diag / np.maximum(support, 1), np.nan)

    @property
    def uar(self) -> float:
        """Unweighted average recall over the classes present in the labels, as a fraction."""
        recall = self.recall
        present = ~np.isnan(recall)
        return float(recall[present].mean()) if present.any() else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready summary; WAR/UAR also in percent, as the paper reports them."""
        return {
            "clips": self.total,
            "war": self.war,
            "uar": self.uar,
            "war_percent": round(100 * self.war, 4),
            "uar_percent": round(100 * self.uar, 4),
            "per_class_recall": {
                name: (None if np.isnan(r) else float(r))
                for name, r in zip(self.class_names, self.recall, strict=True)
            },
            "support": {
                name: int(n)
                for name, n in zip(self.class_names, self.confusion.sum(axis=1), strict=True)
            },
        }


def confusion_matrix(
    targets: Sequence[int], predictions: Sequence[int], num_classes: int
) -> np.ndarray:
    """Counts of (true, predicted) pairs as a (num_classes, num_classes) int64 array."""
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"{t.size} targets but {p.size} predictions")
    for name, a in (("target", t), ("prediction", p)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"{name} class index outside 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def compute_metrics(
    targets: Sequence[int], predictions: Sequence[int], class_names: Sequence[str]
) -> Metrics:
    """WAR, UAR and per-class recall of predicted class indices against true ones."""
    names = tuple(class_names)
    return Metrics(names, confusion_matrix(targets, predictions, len(names)))


def write_confusion_csv(metrics: Metrics, path: Path) -> None:
    """Counts with true classes as rows and predicted classes as columns."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *metrics.class_names])
        for name, row in zip(metrics.class_names, metrics.confusion, strict=True):
            writer.writerow([name, *(int(v) for v in row)])


def plot_confusion(metrics: Metrics, path: Path, title: str = "Confusion matrix") -> None:
    """Row-normalised confusion matrix (percent of each true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    support = metrics.confusion.sum(axis=1, keepdims=True)
    normalised = 100 * metrics.confusion / np.maximum(support, 1)
    n = len(metrics.class_names)
    fig, ax = plt.subplots(figsize=(2 + 0.9 * n, 1.5 + 0.8 * n))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, label="% of true class")
    ax.set_xticks(range(n), metrics.class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), metrics.class_names)
    for i in range(n):
        for j in range(n):
            value = normalised[i, j]
            ax.text(
                j,
                i,
                f"{value:.1f}",
                ha="center",
                va="center",
                color="white" if value > 50 else "black",
                fontsize=9,
            )
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title(f"{title}\nUAR {100 * metrics.uar:.2f}  WAR {100 * metrics.war:.2f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(metrics: Metrics, out_dir: Path, extra: dict | None = None) -> dict:
    """metrics.json, confusion.csv and confusion.png in out_dir; returns the JSON content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {**(extra or {}), **metrics.to_dict()}
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_confusion_csv(metrics, out_dir / "confusion.csv")
    plot_confusion(metrics, out_dir / "confusion.png")
    return summary


@dataclass(frozen=True)
class Predictions:
    """Model outputs for every clip of a dataset, in dataset order."""

    targets: list[int]
    logits: torch.Tensor  # (N, C) float32 on the CPU

    @property
    def probabilities(self) -> torch.Tensor:
        return self.logits.softmax(dim=1)

    @property
    def predictions(self) -> list[int]:
        return self.logits.argmax(dim=1).tolist()


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: Dataset,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    workers: int = 0,
    precision: Precision = "float32",
    progress: Callable[[int, int], None] | None = None,
) -> Predictions:
    """Logits of ``model`` for every item ``(images, label, fbank, index)`` of ``dataset``."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    targets: list[int] = []
    logits: list[torch.Tensor] = []
    for step, (images, labels, audio, _) in enumerate(loader):
        logits.append(predict_logits(model, images, audio, device, precision))
        targets += labels.tolist()
        if progress is not None:
            progress(step + 1, len(loader))
    model.train(was_training)
    return Predictions(targets, torch.cat(logits) if logits else torch.zeros(0, 0))


def write_predictions(
    path: Path, predictions: Predictions, clips: Sequence, class_names: Sequence[str]
) -> None:
    """One CSV row per clip: where it came from, true and predicted label, probabilities."""
    probabilities = predictions.probabilities
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "line",
                "source",
                "start_s",
                "end_s",
                "label",
                "predicted",
                "confidence",
                *(f"prob_{name}" for name in class_names),
            ]
        )
        for clip, target, row in zip(clips, predictions.targets, probabilities, strict=True):
            source = getattr(clip, "folder", None) or getattr(clip, "video", "")
            best = int(row.argmax())
            writer.writerow(
                [
                    clip.line,
                    str(source),
                    "" if getattr(clip, "start_s", None) is None else clip.start_s,
                    "" if getattr(clip, "end_s", None) is None else clip.end_s,
                    class_names[target],
                    class_names[best],
                    f"{float(row[best]):.6f}",
                    *(f"{float(p):.6f}" for p in row),
                ]
            )

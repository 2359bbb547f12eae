"""WAR/UAR and the evaluation report against hand-computed values."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mmadfer_cli.recipe.evaluate import compute_metrics, confusion_matrix, write_report

# rows: true class, columns: predicted class
FIXED = np.array([[3, 1, 0], [2, 2, 0], [0, 1, 1]])
NAMES = ("happiness", "sadness", "neutral")


def _pairs(matrix: np.ndarray) -> tuple[list[int], list[int]]:
    targets, predictions = [], []
    for t in range(matrix.shape[0]):
        for p in range(matrix.shape[1]):
            targets += [t] * int(matrix[t, p])
            predictions += [p] * int(matrix[t, p])
    return targets, predictions


def test_metrics_equal_hand_computed_values():
    targets, predictions = _pairs(FIXED)
    metrics = compute_metrics(targets, predictions, NAMES)
    np.testing.assert_array_equal(metrics.confusion, FIXED)
    # WAR = (3 + 2 + 1) / 10; UAR = mean(3/4, 2/4, 1/2)
    assert metrics.war == pytest.approx(0.6)
    assert metrics.uar == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    np.testing.assert_allclose(metrics.recall, [0.75, 0.5, 0.5])


def test_uar_leaves_out_classes_without_clips():
    # class 3 ("anger") never occurs as a label but is predicted once
    targets = [0, 0, 1, 1, 2]
    predictions = [0, 3, 1, 1, 0]
    metrics = compute_metrics(targets, predictions, (*NAMES, "anger"))
    assert metrics.war == pytest.approx(3 / 5)
    assert metrics.uar == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert np.isnan(metrics.recall[3])
    assert metrics.to_dict()["per_class_recall"]["anger"] is None


def test_confusion_matrix_rejects_out_of_range_classes():
    with pytest.raises(ValueError, match="prediction"):
        confusion_matrix([0, 1], [0, 5], 3)
    with pytest.raises(ValueError, match="2 targets but 1"):
        confusion_matrix([0, 1], [0], 3)


def test_report_files(tmp_path):
    targets, predictions = _pairs(FIXED)
    summary = write_report(compute_metrics(targets, predictions, NAMES), tmp_path, {"model": "m"})
    assert summary["model"] == "m"
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["war_percent"] == pytest.approx(60.0)
    assert on_disk["uar_percent"] == pytest.approx(58.3333, abs=1e-4)
    assert on_disk["support"] == {"happiness": 4, "sadness": 4, "neutral": 2}
    with open(tmp_path / "confusion.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true\\predicted", *NAMES]
    assert [[int(v) for v in r[1:]] for r in rows[1:]] == FIXED.tolist()
    png = (tmp_path / "confusion.png").read_bytes()
    assert png.startswith(b"\x89PNG")

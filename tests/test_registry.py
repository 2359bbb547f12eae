"""The model cache and ``mmadfer models``: import, list, info, remove, and model resolution."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mmadfer_cli.cli.app import app
from mmadfer_cli.model import save_checkpoint
from mmadfer_cli.model.labels import MAFW_CLASSES
from mmadfer_cli.model.registry import (
    NoModelError,
    RegistryError,
    import_model,
    list_models,
    resolve_model,
)
from tests.model_helpers import random_inputs, tiny_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MMADFER_HOME", str(home))
    return home


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "MAFW fold 1.safetensors"
    save_checkpoint(tiny_model(class_names=MAFW_CLASSES), path)
    return path


def test_import_list_info_remove_through_the_cli(checkpoint: Path, cache: Path) -> None:
    imported = runner.invoke(app, ["models", "import", str(checkpoint)])
    assert imported.exit_code == 0, imported.output
    assert imported.stdout.strip() == "MAFW-fold-1"
    assert (cache / "models" / "MAFW-fold-1.safetensors").is_file()

    listed = runner.invoke(app, ["models", "list", "--json"])
    assert listed.exit_code == 0
    (entry,) = json.loads(listed.stdout)
    assert entry["name"] == "MAFW-fold-1"
    assert entry["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert entry["source"] == checkpoint.name
    assert entry["class_names"] == list(MAFW_CLASSES)

    info = runner.invoke(app, ["models", "info", "MAFW-fold-1"])
    assert info.exit_code == 0
    assert "class_names: happiness, sadness" in info.stdout
    assert f"sha256: {hashlib.sha256(checkpoint.read_bytes()).hexdigest()}" in info.stdout

    removed = runner.invoke(app, ["models", "remove", "MAFW-fold-1"])
    assert removed.exit_code == 0
    assert list_models() == []
    assert not any((cache / "models").iterdir())


def test_import_with_a_name_and_name_clash(checkpoint: Path) -> None:
    assert (
        runner.invoke(app, ["models", "import", str(checkpoint), "--name", "mafw1"]).exit_code == 0
    )
    again = runner.invoke(app, ["models", "import", str(checkpoint), "--name", "mafw1"])
    assert again.exit_code == 2
    assert "already exists" in again.output
    bad = runner.invoke(app, ["models", "import", str(checkpoint), "--name", "../x"])
    assert bad.exit_code == 2
    assert "invalid model name" in bad.output


def test_import_refuses_a_bad_file_and_stores_nothing(tmp_path: Path, cache: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(2048))
    result = runner.invoke(app, ["models", "import", str(junk)])
    assert result.exit_code == 1
    assert "not a checkpoint" in result.output
    assert list_models() == []


def test_unknown_model_is_a_usage_error() -> None:
    result = runner.invoke(app, ["models", "info", "nope"])
    assert result.exit_code == 2
    assert "no model named 'nope'" in result.output


def test_resolve_model_default_by_name_and_by_file(checkpoint: Path) -> None:
    with pytest.raises(NoModelError, match="mmadfer models import FILE"):
        resolve_model(None, None)
    record = import_model(checkpoint, "first")
    model, info = resolve_model(None, None)
    assert info == record and not model.training
    images, audio = random_inputs(1)
    with torch.inference_mode():
        expected = tiny_model(class_names=MAFW_CLASSES)(images, audio)
        assert torch.equal(model(images, audio), expected)

    import_model(checkpoint, "second")
    with pytest.raises(NoModelError, match=r"several models are imported \(first, second\)"):
        resolve_model(None, None)
    assert resolve_model("second", None)[1].name == "second"

    _, direct = resolve_model(None, checkpoint)
    assert direct.sha256 == record.sha256 and direct.class_names == MAFW_CLASSES
    with pytest.raises(RegistryError, match="not both"):
        resolve_model("first", checkpoint)

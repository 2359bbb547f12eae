"""Checkpoint files: official .pth read without running pickled code, and safetensors."""

from __future__ import annotations

import io
import json
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mmadfer_cli.model import CheckpointError, load_checkpoint, save_checkpoint
from mmadfer_cli.model.checkpoints import read_official_state_dict
from mmadfer_cli.model.labels import DFEW_CLASSES, MAFW_CLASSES
from tests.model_helpers import random_inputs, tiny_model


class RecorderMeter:
    """Like the training script's class, which real checkpoints pickle as ``__main__.RecorderMeter``."""

    def __init__(self) -> None:
        self.total_epoch = 25
        self.epoch_losses = np.zeros((25, 2), dtype=np.float32)


RecorderMeter.__module__ = "__main__"


class _OpensAFile:
    """A pickle payload: unpickling it would create ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _released_shapes(reference_dir: Path, dataset: str) -> dict[str, list[int]]:
    return json.loads((reference_dir / f"state_dict_{dataset}.json").read_text())


def _cheap_state(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Every key at full shape, each a broadcast of one distinct value (tiny on disk)."""
    return {
        k: torch.full((1,), i / 1000.0).expand(shape) for i, (k, shape) in enumerate(shapes.items())
    }


def _save_official(
    path: Path, state: dict[str, torch.Tensor], monkeypatch, on_cuda: bool = True
) -> None:
    """Write the released layout; ``best_acc`` recorded as saved on CUDA, as in the real files."""
    monkeypatch.setattr(sys.modules["__main__"], "RecorderMeter", RecorderMeter, raising=False)
    buffer = io.BytesIO()
    torch.save(
        {
            "epoch": 25,
            "state_dict": state,
            "best_acc": torch.tensor(77.5),
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0]}]},
            "recorder": RecorderMeter(),
        },
        buffer,
    )
    if not on_cuda:
        path.write_bytes(buffer.getvalue())
        return
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            out.writestr(info.filename, data)


def test_layout_sample_entries_come_through_exactly(reference_dir) -> None:
    state = read_official_state_dict(reference_dir / "official_layout_sample.pth")
    assert set(state) == {
        "our_classifier.weight",
        "our_classifier.bias",
        "image_encoder.all_gate.0",
    }
    assert torch.equal(state["our_classifier.weight"], torch.full((7, 512), 0.25))
    assert torch.equal(state["our_classifier.bias"], torch.arange(7, dtype=torch.float32))
    assert torch.equal(state["image_encoder.all_gate.0"], torch.tensor([0.125]))


def test_layout_sample_is_refused_as_incomplete(reference_dir) -> None:
    with pytest.raises(CheckpointError, match=r"493 missing keys: audio_model\.all_gate\.0"):
        load_checkpoint(reference_dir / "official_layout_sample.pth")


@pytest.mark.parametrize(("dataset", "classes"), [("dfew", DFEW_CLASSES), ("mafw", MAFW_CLASSES)])
def test_official_layout_with_every_key_loads(
    reference_dir, tmp_path, monkeypatch, dataset, classes
) -> None:
    shapes = _released_shapes(reference_dir, dataset)
    state = _cheap_state(shapes)
    path = tmp_path / "model_set_1.pth"
    _save_official(path, state, monkeypatch)
    model = load_checkpoint(path)
    assert not model.training
    assert model.config.class_names == classes
    loaded = model.state_dict()
    for key in (
        "module.our_classifier.bias",
        "module.image_encoder.all_gate.3",
        "module.temporal_net.cls_token",
    ):
        assert torch.equal(loaded[key.removeprefix("module.")], state[key])


def test_code_running_pth_is_refused_and_does_not_run(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    monkeypatch.setattr(sys.modules["__main__"], "RecorderMeter", RecorderMeter, raising=False)
    torch.save({"state_dict": {"x": torch.zeros(1)}, "recorder": _OpensAFile(marker)}, path)
    with pytest.raises(CheckpointError, match=r"references .*open.*could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_bare_code_running_pickle_is_refused_and_does_not_run(tmp_path) -> None:
    marker = tmp_path / "payload_ran"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"state_dict": _OpensAFile(marker)}, protocol=4))
    with pytest.raises(CheckpointError, match=r"bare pickle.*open"):
        load_checkpoint(path)
    assert not marker.exists()


def test_encoder_only_checkpoint_is_refused_with_key_names(tmp_path) -> None:
    # MAE-Face / AudioMAE pretraining files: {"model": encoder weights with timm names}
    encoder = {
        "cls_token": torch.zeros(1, 1, 768),
        "pos_embed": torch.zeros(1, 197, 768),
        "patch_embed.proj.weight": torch.zeros(768, 3, 16, 16),
        "blocks.0.norm1.weight": torch.ones(768),
    }
    path = tmp_path / "mae_face_pretrain_vit_base.pth"
    torch.save({"model": encoder}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    message = str(error.value)
    assert "missing keys: audio_model.all_gate.0" in message
    assert "unexpected keys: blocks.0.norm1.weight, cls_token" in message


def test_mis_shaped_keys_are_named(reference_dir, tmp_path, monkeypatch) -> None:
    state = _cheap_state(_released_shapes(reference_dir, "dfew"))
    state["module.vision_proj.weight"] = torch.zeros(256, 768)
    path = tmp_path / "odd.pth"
    _save_official(path, state, monkeypatch, on_cuda=False)
    with pytest.raises(
        CheckpointError,
        match=r"mis-shaped keys: vision_proj\.weight \(256, 768\) \(expected \(512, 768\)\)",
    ):
        load_checkpoint(path)


def test_truncated_and_random_files_are_refused(tmp_path) -> None:
    whole = tmp_path / "whole.pth"
    torch.save({"state_dict": {"a": torch.zeros(1000)}}, whole)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged PyTorch file"):
        load_checkpoint(truncated)

    noise = tmp_path / "noise.bin"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(noise)
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "absent.pth")


def test_safetensors_round_trip_gives_identical_logits(tmp_path) -> None:
    model = tiny_model(class_names=MAFW_CLASSES)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(model, path)
    loaded = load_checkpoint(path)
    assert loaded.config == model.config
    assert not loaded.training
    images, audio = random_inputs(2)
    with torch.inference_mode():
        assert torch.equal(model(images, audio), loaded(images, audio))


def test_truncated_or_foreign_safetensors_are_refused(tmp_path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny_model(), path)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size - 100])
    with pytest.raises(CheckpointError, match="truncated or damaged safetensors"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="without mmadfer metadata"):
        load_checkpoint(foreign)

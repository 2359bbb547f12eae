"""The training recipe: official parameter sets, pre-trained encoders, one epoch, resume."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from mmadfer_cli.model import MMADFERConfig, build_model, load_checkpoint
from mmadfer_cli.model.pretrained import (
    LoadReport,
    PretrainedError,
    load_pretrained_encoders,
    read_encoder_state,
)
from mmadfer_cli.recipe.dataset import LabelledClipDataset
from mmadfer_cli.recipe.evaluate import predict
from mmadfer_cli.recipe.labelled_data import read_annotation_list
from mmadfer_cli.recipe.train import (
    TrainSettings,
    is_officially_trained,
    set_official_trainable,
    train,
)
from tests.recipe_helpers import CLASSES, make_separable_set, write_tiny_encoders

# What the official main.py trains, written out by module (not by its substring rules).
TRAINED_PREFIXES = (
    "image_encoder.pos_embed",
    "image_encoder.learnable_prompts_",
    "image_encoder.temporal_pre.",
    "image_encoder.temporal_pre_norm.",
    "image_encoder.temporal_att_post.",
    "image_encoder.audio_proj_pre.",
    "image_encoder.all_gate.",
    "audio_model.pos_embed",
    "audio_model.learnable_prompts_",
    "audio_model.temporal_att_post.",
    "audio_model.all_gate.",
    "vision_proj.",
    "temporal_net.",
    "our_classifier.",
)


def test_trained_parameters_are_the_official_sets(reference_dir):
    released = [
        k.removeprefix("module.")
        for k in json.loads((reference_dir / "state_dict_dfew.json").read_text())
    ]
    assert {k for k in released if is_officially_trained(k)} == {
        k for k in released if k.startswith(TRAINED_PREFIXES)
    }
    model = build_model(MMADFERConfig.tiny(CLASSES))
    trained = set(set_official_trainable(model))
    names = {name for name, _ in model.named_parameters()}
    assert trained == {n for n in names if n.startswith(TRAINED_PREFIXES)}
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trained
    frozen = names - trained
    assert any(n.startswith("image_encoder.blocks.") for n in frozen)
    assert "audio_model.patch_embed.proj.weight" in frozen


def test_pretrained_encoders_load_with_resized_positions(tmp_path):
    image_path, audio_path = write_tiny_encoders(tmp_path)
    model = build_model(MMADFERConfig.tiny(CLASSES))
    image_report, audio_report = load_pretrained_encoders(model, image_path, audio_path)
    image_state, audio_state = read_encoder_state(image_path), read_encoder_state(audio_path)

    qkv = "blocks.1.attn.qkv.weight"
    assert torch.equal(model.image_encoder.state_dict()[qkv], image_state[qkv])
    assert torch.equal(model.audio_model.state_dict()[qkv], audio_state[qkv])
    # image: 14 x 14 grid kept; the prompt positions are new
    assert torch.equal(model.image_encoder.pos_embed[:, :197].detach(), image_state["pos_embed"])
    # audio: 64 x 8 grid -> 32 x 8, bicubic; the CLS position kept
    source = audio_state["pos_embed"]
    grid = source[0, 1:].reshape(1, 64, 8, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(32, 8), mode="bicubic", align_corners=False)
    expected = expected.permute(0, 2, 3, 1).reshape(1, 256, -1)
    loaded = model.audio_model.pos_embed.detach()
    assert torch.equal(loaded[:, :1], source[:, :1])
    torch.testing.assert_close(loaded[:, 1:257], expected)
    assert loaded.shape[1] == 257 + model.audio_model.learnable_prompts_init.shape[0]

    assert "decoder_embed.weight" in image_report.ignored and "mask_token" in audio_report.ignored
    assert "audio_proj_pre.0.0.weight" in image_report.fresh
    assert not any(k.startswith("blocks.") for k in image_report.fresh + audio_report.fresh)
    # The training log's line: the three counts, and names only where there are some.
    line = image_report.describe(shown=1)
    assert line.startswith(f"{len(image_report.loaded)} weights loaded; ")
    assert (
        f"{len(image_report.ignored)} only in the checkpoint, left out ({image_report.ignored[0]}, ...)"
        in line
    )
    assert f"{len(image_report.fresh)} new in this model" in line
    nothing_new = LoadReport(image_report.loaded, (), ())
    assert nothing_new.describe().endswith(
        "0 only in the checkpoint, left out; 0 new in this model, initialised afresh"
    )


def test_pretrained_checkpoint_errors(tmp_path):
    model = build_model(MMADFERConfig.tiny(CLASSES))
    image_path, _ = write_tiny_encoders(tmp_path)
    wrong = tmp_path / "wrong.pth"
    torch.save({"state_dict": {}}, wrong)
    with pytest.raises(PretrainedError, match="no 'model' entry"):
        load_pretrained_encoders(model, wrong, image_path)
    partial = tmp_path / "partial.pth"
    torch.save({"model": {"pos_embed": torch.zeros(1, 197, 32)}}, partial)
    with pytest.raises(PretrainedError, match="not a ViT encoder checkpoint"):
        load_pretrained_encoders(model, partial, image_path)


@pytest.fixture(scope="module")
def recipe_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    listing = make_separable_set(root / "data", clips_per_class=3, frames=20)
    encoders = write_tiny_encoders(root / "encoders")
    return root, listing, encoders


def _fresh(recipe_setup, seed: int = 0):
    _, listing, (image_path, audio_path) = recipe_setup
    torch.manual_seed(seed)
    model = build_model(MMADFERConfig.tiny(CLASSES))
    load_pretrained_encoders(model, image_path, audio_path)
    clips = read_annotation_list(listing, CLASSES)
    return model, LabelledClipDataset(clips, train=True), LabelledClipDataset(clips)


SETTINGS = dict(batch_size=3, lr=3e-3, workers=0, seed=5, device="cpu")


def test_one_epoch_lowers_the_loss_and_writes_loadable_files(recipe_setup, tmp_path):
    model, train_data, val_data = _fresh(recipe_setup)
    before = predict(model, val_data, batch_size=3)
    loss_before = F.cross_entropy(before.logits, torch.tensor(before.targets)).item()
    history = train(
        model,
        train_data,
        val_data,
        tmp_path,
        TrainSettings(epochs=1, **SETTINGS),
        log=lambda _: None,
    )
    assert len(history) == 1
    assert history[0]["val_loss"] < loss_before
    for name in (
        "last.safetensors",
        "best.safetensors",
        "checkpoint.pt",
        "log.csv",
        "learning_curve.png",
    ):
        assert (tmp_path / name).is_file(), name
    loaded = load_checkpoint(tmp_path / "last.safetensors")
    assert loaded.config.class_names == CLASSES
    after = predict(loaded, val_data, batch_size=3)
    torch.testing.assert_close(after.logits, predict(model, val_data, batch_size=3).logits)
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")


def test_interrupted_training_resumes_at_the_next_epoch(recipe_setup, tmp_path):
    settings = TrainSettings(epochs=2, **SETTINGS)
    straight, train_data, val_data = _fresh(recipe_setup)
    train(straight, train_data, val_data, tmp_path / "straight", settings, log=lambda _: None)

    def stop(epoch: int) -> None:
        raise KeyboardInterrupt

    first, train_data, val_data = _fresh(recipe_setup)
    with pytest.raises(KeyboardInterrupt):
        train(
            first,
            train_data,
            val_data,
            tmp_path / "resumed",
            settings,
            log=lambda _: None,
            on_epoch_end=stop,
        )
    messages: list[str] = []
    second, train_data, val_data = _fresh(
        recipe_setup, seed=99
    )  # state must come from the checkpoint
    history = train(
        second,
        train_data,
        val_data,
        tmp_path / "resumed",
        settings,
        resume=True,
        log=messages.append,
    )
    assert any("resuming at epoch 2 of 2" in m for m in messages)
    assert [row["epoch"] for row in history] == [1, 2]

    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=0, atol=0, msg=key)
    for index, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(b["optimizer"]["state"][index][name], value, rtol=0, atol=0)
    assert a["scheduler"] == b["scheduler"]

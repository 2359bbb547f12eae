"""The MMA-DFER architecture: released key layout, parity with the official code, fusion behaviour."""

from __future__ import annotations

import json

import pytest
import torch

from mmadfer_cli.model import MMADFERConfig, build_model
from mmadfer_cli.model.checkpoints import IGNORED_KEYS
from mmadfer_cli.model.labels import MAFW_CLASSES
from tests.model_helpers import (
    random_inputs,
    reference_inputs,
    reference_state_dict,
    tiny_model,
)


@pytest.mark.parametrize(("dataset", "classes"), [("dfew", None), ("mafw", MAFW_CLASSES)])
def test_parameters_match_released_keys_and_shapes(reference_dir, dataset, classes) -> None:
    released = json.loads((reference_dir / f"state_dict_{dataset}.json").read_text())
    released = {k.removeprefix("module."): tuple(v) for k, v in released.items()}
    config = MMADFERConfig() if classes is None else MMADFERConfig(class_names=classes)
    with torch.device("meta"):
        model = build_model(config)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == {k: v for k, v in released.items() if k not in IGNORED_KEYS}


@pytest.mark.slow
def test_reproduces_official_logits(reference_dir) -> None:
    parity = json.loads((reference_dir / "parity_dfew_public.json").read_text())
    images, audio = reference_inputs(parity["seed"], parity["batch"])
    assert images.double().sum().item() == pytest.approx(parity["images_sum"], rel=1e-12)
    assert audio.double().sum().item() == pytest.approx(parity["audio_sum"], rel=1e-12)
    state = {k.removeprefix("module."): v for k, v in reference_state_dict(reference_dir).items()}
    model = build_model(MMADFERConfig()).eval()
    model.load_state_dict({k: v for k, v in state.items() if k not in IGNORED_KEYS})
    with torch.inference_mode():
        logits = model(images, audio)
    diff = (logits - torch.tensor(parity["logits"])).abs().max().item()
    assert diff < 1e-5, f"max |logit diff| {diff:.3g}"


def test_tiny_forward_shape_and_batch_independence() -> None:
    model = tiny_model()
    images, audio = random_inputs(3)
    with torch.inference_mode():
        batched = model(images, audio)
        single = torch.cat([model(images[i : i + 1], audio[i : i + 1]) for i in range(3)])
    assert batched.shape == (3, 7)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_output_depends_on_audio_and_frame_order() -> None:
    model = tiny_model()
    images, audio = random_inputs(1)
    with torch.inference_mode():
        base = model(images, audio)
        silent = model(images, torch.zeros_like(audio))
        reversed_frames = model(images.flip(1), audio)
    assert (base - silent).abs().max() > 1e-4
    assert (base - reversed_frames).abs().max() > 1e-5


def test_fusion_gates_change_the_face_path() -> None:
    model = tiny_model()
    images, audio = random_inputs(1)
    with torch.inference_mode():
        gated = model(images, audio)
        for gate in model.image_encoder.all_gate:
            gate.zero_()
        closed = model(images, audio)
    assert (gated - closed).abs().max() > 1e-4


def test_rejects_wrong_input_shapes() -> None:
    model = tiny_model()
    images, audio = random_inputs(1)
    with pytest.raises(ValueError, match="images must be"):
        model(images[:, :8], audio)
    with pytest.raises(ValueError, match="audio must be"):
        model(images, audio[:, :, :256])
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(images, torch.cat([audio, audio]))


def test_config_round_trips_through_dict() -> None:
    config = MMADFERConfig.tiny(MAFW_CLASSES)
    assert MMADFERConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown model configuration fields: colour"):
        MMADFERConfig.from_dict({"colour": "blue"})


def test_encoders_use_official_stochastic_depth_only_in_training() -> None:
    config = MMADFERConfig.tiny()
    model = build_model(config)
    for encoder in (model.image_encoder, model.audio_model):
        rates = [block.drop_path_rate for block in encoder.blocks]
        assert rates[0] == 0.0 and rates[-1] == pytest.approx(config.drop_path_rate)
    torch.manual_seed(0)
    images = torch.rand(4, 16, 3, 224, 224)
    audio = torch.randn(4, 1, 512, 128)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(images, audio), model(images, audio))
        model.train()
        assert not torch.equal(model(images, audio), model(images, audio))


@pytest.mark.parametrize("batch", [1, 5])  # 5: a last group smaller than CPU_GROUP
def test_cpu_bfloat16_attention_agrees_with_float32(batch: int) -> None:
    from mmadfer_cli.model.attention import attention

    sdpa = torch.nn.functional.scaled_dot_product_attention
    torch.manual_seed(batch)
    q, k, v = (torch.randn(batch, 3, 37, 64) * 2 for _ in range(3))
    exact = sdpa(q, k, v)
    assert torch.equal(attention(q, k, v), exact)  # float32 keeps PyTorch's kernel
    low = attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert low.dtype == torch.bfloat16 and low.shape == exact.shape
    # Within twice the distance of PyTorch's own fused bfloat16 kernel from float32.
    fused = sdpa(q.bfloat16(), k.bfloat16(), v.bfloat16()).float() - exact
    ours = low.float() - exact
    assert ours.abs().max() <= 2 * fused.abs().max()
    assert ours.abs().mean() <= 2 * fused.abs().mean()

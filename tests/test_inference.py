"""The inference helper: input conversion and precision modes."""

from __future__ import annotations

import copy

import pytest
import torch

from mmadfer_cli.model.inference import cast_weights, predict_logits, predict_proba, weights_dtype
from tests.model_helpers import random_inputs, tiny_model


def _varied_inputs(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of different colours and loudness (random noise clips all look alike to the model)."""
    g = torch.Generator().manual_seed(3)
    colours = torch.rand(n, 1, 3, 1, 1, generator=g)
    images = (colours + 0.1 * torch.rand(n, 16, 3, 224, 224, generator=g)).clamp(0, 1)
    audio = 0.2 * torch.randn(n, 1, 512, 128, generator=g) + torch.linspace(-2, 2, n).view(
        n, 1, 1, 1
    )
    return images, audio


def _varied_labels_model(images: torch.Tensor, audio: torch.Tensor) -> torch.nn.Module:
    """A tiny model whose labels depend on the input: a random one gives every clip the class
    of its largest classifier bias, so the classifier is centred on these inputs and scaled up."""
    model = tiny_model(seed=2)
    logits = predict_logits(model, images, audio)
    with torch.no_grad():
        model.our_classifier.bias.sub_(logits.mean(0)).mul_(10)
        model.our_classifier.weight.mul_(10)
    return model


def test_uint8_clips_equal_their_float_scaling() -> None:
    model = tiny_model()
    images, audio = random_inputs(2)
    as_bytes = (images * 255).round().to(torch.uint8)
    from_bytes = predict_proba(model, as_bytes, audio)
    from_floats = predict_proba(model, as_bytes.float() / 255, audio)
    torch.testing.assert_close(from_bytes, from_floats)
    assert from_bytes.shape == (2, 7) and from_bytes.dtype == torch.float32
    torch.testing.assert_close(from_bytes.sum(-1), torch.ones(2))
    with torch.inference_mode():
        direct = model(as_bytes.float() / 255, audio).softmax(-1)
    torch.testing.assert_close(from_bytes, direct)


def test_cpu_bfloat16_autocast_stays_close_to_float32() -> None:
    model = tiny_model()
    images, audio = random_inputs(2)
    reference = predict_logits(model, images, audio, "cpu", "float32")
    low = predict_logits(model, images, audio, "cpu", "bfloat16")
    assert low.dtype == torch.float32
    assert not torch.equal(low, reference)  # autocast really ran in bfloat16
    assert (low - reference).abs().max() < 0.1


def test_bfloat16_weights_keep_the_float32_labels() -> None:
    images, audio = _varied_inputs()
    model = _varied_labels_model(images, audio)
    reference = predict_logits(model, images, audio, "cpu", "float32")
    cast = cast_weights(copy.deepcopy(model), "bfloat16", "weights")
    assert weights_dtype(cast) == torch.bfloat16 and weights_dtype(model) == torch.float32
    low = predict_logits(cast, (images * 255).round().to(torch.uint8), audio, "cpu", "bfloat16")
    _assert_keeps_labels(low, reference)


def _assert_keeps_labels(low: torch.Tensor, reference: torch.Tensor) -> None:
    """Every clip that is not a near-tie in float32 keeps its label (and the labels vary)."""
    assert low.dtype == torch.float32 and low.shape == reference.shape
    assert not torch.equal(low, reference)  # the model really ran in low precision
    top2 = reference.topk(2, dim=-1).values
    clear = top2[:, 0] - top2[:, 1] > 0.2
    assert clear.sum() >= 10 and len(set(reference.argmax(-1)[clear].tolist())) >= 3
    assert torch.equal(low.argmax(-1)[clear], reference.argmax(-1)[clear])
    assert (low.softmax(-1) - reference.softmax(-1)).abs().max() < 0.05


def test_cast_weights_only_for_bfloat16_weights_mode() -> None:
    for precision, mode in (("float32", None), ("float32", "weights"), ("bfloat16", "autocast")):
        assert weights_dtype(cast_weights(tiny_model(), precision, mode)) == torch.float32
    images, audio = random_inputs(1)
    cast = cast_weights(tiny_model(), "bfloat16", "weights")
    with pytest.raises(ValueError, match=r"weights are torch\.bfloat16"):
        predict_logits(cast, images, audio, "cpu", "float32")


def test_unsupported_precisions_are_refused() -> None:
    model = tiny_model()
    images, audio = random_inputs(1)
    with pytest.raises(ValueError, match="float16 needs a CUDA device"):
        predict_logits(model, images, audio, "cpu", "float16")
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        predict_logits(model, images, audio, "cpu", "int8")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_cuda_autocast_matches_float32_labels(precision: str) -> None:
    model = tiny_model().cuda()
    images, audio = random_inputs(4)
    as_bytes = (images * 255).round().to(torch.uint8)
    reference = predict_logits(model, as_bytes, audio, "cuda", "float32")
    cpu = predict_logits(model.cpu(), as_bytes, audio, "cpu", "float32")
    torch.testing.assert_close(reference, cpu, atol=1e-4, rtol=1e-4)
    low = predict_logits(model.cuda(), as_bytes, audio, "cuda", precision)
    assert (low - reference).abs().max() < 0.1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bfloat16_weights_keep_the_float32_labels() -> None:
    images, audio = _varied_inputs()
    model = _varied_labels_model(images, audio).cuda()
    reference = predict_logits(model, images, audio, "cuda", "float32")
    cast = cast_weights(copy.deepcopy(model), "bfloat16", "weights")
    _assert_keeps_labels(predict_logits(cast, images, audio, "cuda", "bfloat16"), reference)

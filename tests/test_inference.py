"""The inference helper: input conversion and precision modes."""

from __future__ import annotations

import pytest
import torch

from mmadfer_cli.model.inference import predict_logits, predict_proba
from tests.model_helpers import random_inputs, tiny_model


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

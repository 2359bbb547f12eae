"""The filterbank against the official loader's output for real WAV files."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from mmadfer_cli.media.fbank import (
    FBANK_FRAMES,
    MEL_BINS,
    NORM_MEAN,
    NORM_STD,
    batch_fbank,
    silent_fbank,
    waveform_fbank,
)


def read_wav(path: Path) -> tuple[torch.Tensor, int]:
    """16-bit PCM -> float (channels, samples) in [-1, 1], as torchaudio.load normalises it."""
    with wave.open(str(path)) as f:
        assert f.getsampwidth() == 2
        data = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
        channels, rate = f.getnchannels(), f.getframerate()
    samples = data.reshape(-1, channels).T.astype(np.float32) / 32768.0
    return torch.from_numpy(samples), rate


def _wavs(reference: Path) -> list[Path]:
    return sorted((reference / "wav").glob("*.wav"))


def test_reproduces_every_official_fbank(reference_dir) -> None:
    wavs = _wavs(reference_dir)
    assert len(wavs) == 4
    for path in wavs:
        expected = torch.from_numpy(np.load(reference_dir / f"fbank_{path.stem}.npy"))
        waveform, rate = read_wav(path)
        got = waveform_fbank(waveform, rate)
        diff = (got - expected).abs()
        assert got.shape == (FBANK_FRAMES, MEL_BINS) and got.dtype == torch.float32
        assert diff.max() < 1e-3 and diff.mean() < 1e-5, (
            f"{path.name}: max {diff.max():.2e}, mean {diff.mean():.2e}"
        )


def test_batch_of_mixed_rates_matches_single_clips(reference_dir) -> None:
    clips = [read_wav(p) for p in _wavs(reference_dir)]
    clips.append(clips[0])
    batch = batch_fbank([w for w, _ in clips], [r for _, r in clips], device="cpu")
    assert batch.shape == (len(clips), 1, FBANK_FRAMES, MEL_BINS)
    for i, (waveform, rate) in enumerate(clips):
        torch.testing.assert_close(batch[i, 0], waveform_fbank(waveform, rate))


def test_padding_comes_before_normalisation() -> None:
    padded_value = -NORM_MEAN / (2 * NORM_STD)
    waveform = 0.1 * torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    fbank = waveform_fbank(waveform, 16000)  # 1 s: 98 frames, then padding
    assert torch.all(fbank[98:] == padded_value)
    assert not torch.any(fbank[:98] == padded_value)
    too_short = waveform_fbank(torch.zeros(1, 100), 16000)
    assert torch.all(too_short == padded_value)
    assert torch.equal(silent_fbank(), torch.full((FBANK_FRAMES, MEL_BINS), padded_value))


def test_uses_channel_zero_of_stereo() -> None:
    g = torch.Generator().manual_seed(0)
    left, right = 0.1 * torch.randn(2, 1, 48000, generator=g)
    stereo = torch.cat([left, right])
    torch.testing.assert_close(waveform_fbank(stereo, 48000), waveform_fbank(left, 48000))
    assert not torch.allclose(waveform_fbank(stereo, 48000), waveform_fbank(right, 48000))


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 waveforms but 1 sample rates"):
        batch_fbank([torch.zeros(1, 10), torch.zeros(1, 10)], [16000])
    with pytest.raises(ValueError, match=r"waveform must be \(channels, samples\)"):
        waveform_fbank(torch.zeros(1, 1, 10), 16000)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(reference_dir) -> None:
    waveform, rate = read_wav(_wavs(reference_dir)[0])
    cpu = waveform_fbank(waveform, rate)
    gpu = batch_fbank([waveform], rate, device="cuda")
    assert gpu.device.type == "cuda"
    assert (gpu[0, 0].cpu() - cpu).abs().max() < 1e-3

"""The official audio front end: a Kaldi-compatible log-mel filterbank, batched, on any device.

MMA-DFER's loader reads a clip's whole waveform, removes its mean, computes
``torchaudio.compliance.kaldi.fbank`` on channel 0 (128 mel bins, 25 ms
Hanning windows every 10 ms, pre-emphasis 0.97, no dither, power spectrum),
zero-pads or cuts to 512 frames and only then normalises with the AudioSet
statistics. This module does the same in plain torch, for many clips at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch

FBANK_FRAMES = 512
MEL_BINS = 128
# AudioSet statistics used by the official loader (after padding, so padded frames are not zero).
NORM_MEAN = -4.2677393
NORM_STD = 4.5689974
_FRAME_SHIFT_S = 0.010
_FRAME_LENGTH_S = 0.025
_PREEMPHASIS = 0.97
_LOW_FREQ = 20.0
_EPS = torch.finfo(torch.float32).eps


def waveform_fbank(waveform: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """One clip: float (channels, samples) in [-1, 1] -> normalised (512, 128) float32."""
    return batch_fbank([waveform], sample_rate, device=waveform.device)[0, 0]


def batch_fbank(
    waveforms: Sequence[torch.Tensor],
    sample_rate: Sequence[int] | int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Many clips of any lengths and rates -> (B, 1, 512, 128) float32 on ``device``.

    Clips of one sample rate are framed and transformed together. ``device``
    defaults to the first waveform's device.
    """
    rates = [sample_rate] * len(waveforms) if isinstance(sample_rate, int) else list(sample_rate)
    if len(rates) != len(waveforms):
        raise ValueError(f"{len(waveforms)} waveforms but {len(rates)} sample rates")
    if device is None:
        device = waveforms[0].device if waveforms else "cpu"
    out = torch.empty(len(waveforms), 1, FBANK_FRAMES, MEL_BINS, device=device)
    for rate in sorted(set(rates)):
        index = [i for i, r in enumerate(rates) if r == rate]
        out[index, 0] = _fbank_one_rate([waveforms[i] for i in index], rate, torch.device(device))
    return out


def silent_fbank() -> torch.Tensor:
    """The official MAFW loader's input for a clip without audio: an all-zero filterbank, normalised.

    The loader zero-fills the (512, 128) filterbank and then applies the same
    normalisation as to real audio, so the model sees the constant
    ``-NORM_MEAN / (2 * NORM_STD)`` (about 0.467), not zeros.
    """
    return _normalise(torch.zeros(FBANK_FRAMES, MEL_BINS))


def _normalise(fbank: torch.Tensor) -> torch.Tensor:
    return (fbank - NORM_MEAN) / (NORM_STD * 2)


def _geometry(sample_rate: int) -> tuple[int, int, int]:
    """(frame shift, frame length, FFT size) in samples, truncated as Kaldi does."""
    if sample_rate < 2 * _LOW_FREQ + 1:
        raise ValueError(f"sample rate {sample_rate} Hz is too low for the filterbank")
    shift = int(sample_rate * _FRAME_SHIFT_S)
    length = int(sample_rate * _FRAME_LENGTH_S)
    return shift, length, 1 << (length - 1).bit_length()


def _fbank_one_rate(
    waveforms: Sequence[torch.Tensor], sample_rate: int, device: torch.device
) -> torch.Tensor:
    shift, length, n_fft = _geometry(sample_rate)
    needed = (FBANK_FRAMES - 1) * shift + length  # samples that reach the 512 kept frames
    frames = torch.zeros(len(waveforms), FBANK_FRAMES, length, device=device)
    counts = []
    for i, waveform in enumerate(waveforms):
        wave = _as_channels(waveform).to(device=device, dtype=torch.float32)
        signal = (wave[0, :needed] - wave.mean()) if wave.numel() else wave.new_zeros(0)
        n = (
            0
            if signal.numel() < length
            else min(FBANK_FRAMES, 1 + (signal.numel() - length) // shift)
        )
        if n:
            frames[i, :n] = signal.unfold(0, length, shift)[:n]
        counts.append(n)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat((frames[..., :1], frames[..., :-1]), dim=-1)
    frames = (frames - _PREEMPHASIS * previous) * _hann(length, device)
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)
    fbank = (power @ _mel_banks(sample_rate, n_fft, device).T).clamp_min(_EPS).log()
    valid = (
        torch.arange(FBANK_FRAMES, device=device)[None, :]
        < torch.tensor(counts, device=device)[:, None]
    )
    return _normalise(fbank * valid[..., None])


def _as_channels(waveform: torch.Tensor) -> torch.Tensor:
    if waveform.dim() == 1:
        return waveform[None]
    if waveform.dim() != 2:
        raise ValueError(f"waveform must be (channels, samples), got {tuple(waveform.shape)}")
    return waveform


@lru_cache(maxsize=16)
def _hann(length: int, device: torch.device) -> torch.Tensor:
    return torch.hann_window(length, periodic=False, device=device)


def _mel(freq: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(freq / 700.0)


@lru_cache(maxsize=16)
def _mel_banks(sample_rate: int, n_fft: int, device: torch.device) -> torch.Tensor:
    """Kaldi's triangular mel filters (HTK mel scale, 20 Hz to Nyquist): (128, n_fft // 2 + 1)."""
    nyquist = sample_rate / 2
    low, high = 1127.0 * math.log1p(_LOW_FREQ / 700.0), 1127.0 * math.log1p(nyquist / 700.0)
    delta = (high - low) / (MEL_BINS + 1)
    edges = low + torch.arange(MEL_BINS, dtype=torch.float32)[:, None] * delta
    left, center, right = edges, edges + delta, edges + 2 * delta
    mel = _mel((sample_rate / n_fft) * torch.arange(n_fft // 2, dtype=torch.float32))[None, :]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).to(device)  # the Nyquist bin gets no weight

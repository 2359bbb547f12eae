"""Small pre-trained encoder files and a separable labelled data set for recipe tests."""

from __future__ import annotations

import argparse
import math
import subprocess
import wave
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from mmadfer_cli.model import MMADFERConfig, build_model
from tests.conftest import SAMPLE_VIDEOS, require_tool

CLASSES = ("happiness", "sadness", "neutral")


def _mae_layout(encoder: torch.nn.Module, positions: int, generator: torch.Generator) -> dict:
    """An MAE pre-training state dict: encoder weights, a (1, 1 + positions, C) pos_embed, decoder."""
    state = {}
    for key, value in encoder.state_dict().items():
        if key.startswith(("patch_embed.", "blocks.", "cls_token", "norm.")):
            state[key] = torch.randn(value.shape, generator=generator) * 0.05
    width = state["cls_token"].shape[-1]
    state["pos_embed"] = torch.randn(1, 1 + positions, width, generator=generator)
    state["mask_token"] = torch.zeros(1, 1, 16)
    state["decoder_embed.weight"] = torch.randn(16, width, generator=generator)
    state["decoder_pos_embed"] = torch.zeros(1, 1 + positions, 16)
    return state


def write_tiny_encoders(folder: Path, config: MMADFERConfig | None = None) -> tuple[Path, Path]:
    """MAE-Face-like (14 x 14 grid) and AudioMAE-like (64 x 8 grid) checkpoints for a tiny model."""
    config = config or MMADFERConfig.tiny(CLASSES)
    donor = build_model(config)
    generator = torch.Generator().manual_seed(123)
    folder.mkdir(parents=True, exist_ok=True)
    image_path, audio_path = folder / "mae_face_tiny.pth", folder / "audiomae_tiny.pth"
    args = argparse.Namespace(model="mae_vit_base_patch16", mask_ratio=0.75)
    image = {
        "model": _mae_layout(donor.image_encoder, 14 * 14, generator),
        "epoch": 399,
        "args": args,
    }
    audio = {"model": _mae_layout(donor.audio_model, 64 * 8, generator), "epoch": 32, "args": args}
    torch.save(image, image_path)
    torch.save(audio, audio_path)
    return image_path, audio_path


def write_tone(
    path: Path,
    frequency: float = 440.0,
    seconds: float = 1.0,
    rate: int = 16000,
    amplitude: float = 0.4,
) -> None:
    """A 16-bit mono WAV of a sine tone."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (amplitude * np.sin(2 * math.pi * frequency * t) * 32767).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())


def face_frames(folder: Path, count: int = 40) -> list[Path]:
    """Frames of the single-speaker sample video around the face, 56 x 56 pixels."""
    ffmpeg = require_tool("ffmpeg")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            ffmpeg,
            "-v",
            "error",
            "-i",
            str(SAMPLE_VIDEOS / "single_speaker.mp4"),
            "-vf",
            "crop=240:240:200:40,scale=56:56",
            "-frames:v",
            str(count),
            str(folder / "%05d.png"),
        ],
        check=True,
    )
    return sorted(folder.glob("*.png"))


def make_separable_set(root: Path, clips_per_class: int = 4, frames: int = 20) -> Path:
    """An official-format annotation list (DFEW layout and WAV names) with three easy classes.

    happiness: the face as filmed, a 300 Hz tone; sadness: the negative image,
    a 1200 Hz tone; neutral: the face in grey, no WAV (the zero filterbank).
    """
    source = face_frames(root / "source")
    lines = []
    number = 0
    for label in range(len(CLASSES)):
        for k in range(clips_per_class):
            number += 1
            name = f"{number:05d}"
            folder = root / "clip_224x224" / name
            folder.mkdir(parents=True)
            for i in range(frames):
                with Image.open(source[(k * 5 + i) % len(source)]) as image:
                    rgb = image.convert("RGB")
                if label == 1:
                    rgb = ImageOps.invert(rgb)
                elif label == 2:
                    rgb = ImageOps.grayscale(rgb).convert("RGB")
                rgb.save(folder / f"{i:05d}.png")
            if label < 2:
                write_tone(root / "raw_wav" / f"{number}.wav", 300.0 if label == 0 else 1200.0)
            lines.append(f"{folder} {frames} {label}")
    listing = root / "train.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing

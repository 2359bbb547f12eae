"""MMA-DFER: a face ViT and an audio ViT adapted to each other, then a temporal transformer.

After every block both encoders are projected to a small fusion width; each
frame's face tokens receive the mean audio token, the audio tokens receive
the mean face token over all frames and tokens, and the result goes back
into each encoder through a tanh-gated projection. The face CLS of every
frame plus the audio CLS, projected to 512, feed the temporal transformer,
whose class token is classified.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mmadfer_cli.model.labels import DFEW_CLASSES
from mmadfer_cli.model.temporal import TemporalTransformer
from mmadfer_cli.model.vit import PromptedViT


@dataclass(frozen=True)
class MMADFERConfig:
    """Dimensions of the model; the defaults are the published ones."""

    class_names: tuple[str, ...] = DFEW_CLASSES
    width: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    patch_size: int = 16
    image_size: int = 224
    frames: int = 16
    fbank_frames: int = 512
    mel_bins: int = 128
    prompts: int = 3
    prompt_interval: int = 6
    fusion_dim: int = 128
    temporal_dim: int = 512
    temporal_layers: int = 1
    temporal_heads: int = 8
    temporal_head_dim: int = 64
    temporal_mlp_dim: int = 1024
    drop_path_rate: float = 0.1  # encoders' stochastic depth while training (official: 0.1)

    @classmethod
    def tiny(cls, class_names: tuple[str, ...] = DFEW_CLASSES) -> MMADFERConfig:
        """A small model with the real input shapes (16 x 3 x 224 x 224, 512 x 128): fast CPU tests."""
        return cls(
            class_names=class_names,
            width=32,
            depth=2,
            heads=2,
            prompts=2,
            prompt_interval=1,
            fusion_dim=8,
            temporal_dim=16,
            temporal_heads=2,
            temporal_head_dim=8,
            temporal_mlp_dim=32,
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MMADFERConfig:
        """Inverse of ``to_dict``; unknown fields are an error, not silently dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown model configuration fields: {', '.join(unknown)}")
        values = dict(data)
        if "class_names" in values:
            values["class_names"] = tuple(values["class_names"])
        return cls(**values)


class FaceEncoder(PromptedViT):
    """The face ViT; it also owns the fusion projections of both modalities (official layout)."""

    def __init__(self, config: MMADFERConfig) -> None:
        super().__init__(
            in_chans=3,
            num_patches=(config.image_size // config.patch_size) ** 2,
            **_encoder_dims(config),
        )
        d, w, f = config.depth, config.width, config.fusion_dim
        self.audio_proj_pre = nn.ModuleList(
            nn.Sequential(nn.Linear(w, f), nn.LayerNorm(f)) for _ in range(d)
        )
        self.temporal_pre = nn.ModuleList(nn.Linear(w, f) for _ in range(d))
        self.temporal_pre_norm = nn.ModuleList(nn.LayerNorm(f) for _ in range(d))


def _encoder_dims(config: MMADFERConfig) -> dict[str, Any]:
    return {
        "width": config.width,
        "depth": config.depth,
        "heads": config.heads,
        "mlp_ratio": config.mlp_ratio,
        "patch_size": config.patch_size,
        "prompts": config.prompts,
        "prompt_interval": config.prompt_interval,
        "fusion_dim": config.fusion_dim,
        "drop_path_rate": config.drop_path_rate,
    }


class MMADFER(nn.Module):
    """``model(images, audio) -> logits``.

    images: float (B, frames, 3, H, W) in [0, 1], RGB, no mean/std normalisation.
    audio: the normalised filterbank (B, 1, 512, 128) (see ``mmadfer_cli.media.fbank``).
    """

    def __init__(self, config: MMADFERConfig) -> None:
        super().__init__()
        self.config = config
        grid = (config.fbank_frames // config.patch_size) * (config.mel_bins // config.patch_size)
        self.image_encoder = FaceEncoder(config)
        self.audio_model = PromptedViT(in_chans=1, num_patches=grid, **_encoder_dims(config))
        self.vision_proj = nn.Linear(config.width, config.temporal_dim)
        self.temporal_net = TemporalTransformer(
            frames=config.frames,
            dim=config.temporal_dim,
            depth=config.temporal_layers,
            heads=config.temporal_heads,
            head_dim=config.temporal_head_dim,
            mlp_dim=config.temporal_mlp_dim,
        )
        self.our_classifier = nn.Linear(config.temporal_dim, config.num_classes)

    def forward(self, images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        self._check_inputs(images, audio)
        n, t = images.shape[:2]
        face, voice = self.image_encoder, self.audio_model
        x = face.embed(images.reshape(n * t, *images.shape[2:]))
        a = voice.embed(audio)
        for i in range(self.config.depth):
            a = voice.blocks[i](a)
            x = face.blocks[i](x)
            x_low = face.temporal_pre_norm[i](face.temporal_pre[i](x))
            a_low = face.audio_proj_pre[i](a)
            x_low = x_low.view(n, t, *x_low.shape[1:])
            x_signal = x_low + a_low.mean(1)[:, None, None, :]
            a_signal = a_low + x_low.mean(1).mean(1).unsqueeze(1)
            x = face.fuse(i, x, x_signal.flatten(0, 1))
            a = voice.fuse(i, a, a_signal)
        frames = face.pool(x).view(n, t, -1)
        features = self.vision_proj(frames + voice.pool(a).unsqueeze(1))
        return self.our_classifier(self.temporal_net(features))

    def _check_inputs(self, images: torch.Tensor, audio: torch.Tensor) -> None:
        c = self.config
        want_images = (c.frames, 3, c.image_size, c.image_size)
        want_audio = (1, c.fbank_frames, c.mel_bins)
        if images.dim() != 5 or tuple(images.shape[1:]) != want_images:
            raise ValueError(
                f"images must be (B, {', '.join(map(str, want_images))}), got {tuple(images.shape)}"
            )
        if audio.dim() != 4 or tuple(audio.shape[1:]) != want_audio:
            raise ValueError(
                f"audio must be (B, {', '.join(map(str, want_audio))}), got {tuple(audio.shape)}"
            )
        if images.shape[0] != audio.shape[0]:
            raise ValueError(
                f"batch sizes differ: {images.shape[0]} clips, {audio.shape[0]} audio inputs"
            )


def build_model(config: MMADFERConfig | None = None) -> MMADFER:
    """A randomly initialised model (the released weights come through ``load_checkpoint``)."""
    return MMADFER(config or MMADFERConfig())

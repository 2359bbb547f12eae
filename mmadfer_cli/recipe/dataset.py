"""A torch Dataset of labelled clips: 16 face frames, the clip's filterbank and its label.

Frame folders (official annotation lists) and video CSV spans are sampled as
the official loader does: at training time a random frame from each of 16
equal parts and the official augmentations, at test time the middle frame of
each part. Every
item's randomness comes from a generator seeded by (seed, epoch, index), so an
epoch is the same whether or not training was interrupted before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from mmadfer_cli.media.segments import official_frame_indices
from mmadfer_cli.plural import counted
from mmadfer_cli.recipe import augment
from mmadfer_cli.recipe.labelled_data import (
    DataError,
    FrameFolderClip,
    LabelledClip,
    VideoSpanClip,
    frame_files,
    read_wav,
)

# (row, generator or None) -> (uint8 face frames (16, 3, H, W), fbank (512, 128)) for video CSV
# rows: the train-time frame draw from the generator, or the test-time frames when it is None
SpanLoader = Callable[[VideoSpanClip, torch.Generator | None], tuple[torch.Tensor, torch.Tensor]]


def load_frames(paths: Sequence) -> torch.Tensor:
    """Image files -> uint8 (T, 3, H, W) RGB; all frames are brought to the first one's size."""
    frames = []
    size = None
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if size is None:
                size = rgb.size
            elif rgb.size != size:
                rgb = rgb.resize(size, Image.BILINEAR)
            frames.append(torch.from_numpy(np.asarray(rgb).copy()))
    return torch.stack(frames).permute(0, 3, 1, 2).contiguous()


def clip_fbank(clip: FrameFolderClip) -> torch.Tensor:
    """The clip's normalised (512, 128) filterbank; zeros when it has no WAV (official MAFW)."""
    from mmadfer_cli.media import fbank as audio

    if clip.wav is None:
        return audio.silent_fbank()
    waveform, rate = read_wav(clip.wav)
    return audio.waveform_fbank(waveform, rate)


class LabelledClipDataset(Dataset):
    """Items: (images float (16, 3, S, S) in [0, 1], label, fbank (1, 512, 128), index)."""

    def __init__(
        self,
        clips: Sequence[LabelledClip],
        image_size: int = 224,
        train: bool = False,
        brightness: float = 0.5,
        seed: int = 0,
        span_loader: SpanLoader | None = None,
    ) -> None:
        self.clips = list(clips)
        self.image_size = image_size
        self.train = train
        self.brightness = brightness
        self.seed = seed
        self.epoch = 0
        self.span_loader = span_loader
        if span_loader is None and any(isinstance(c, VideoSpanClip) for c in self.clips):
            raise ValueError(
                "video CSV clips need a span loader (see mmadfer_cli.recipe.video_spans)"
            )

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's random frames and augmentations."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def _generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) & (2**63 - 1))

    def _frame_folder(
        self, clip: FrameFolderClip, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        files = frame_files(clip.folder)
        if self.train:
            indices = augment.train_frame_indices(clip.num_frames, generator)
        else:
            indices = official_frame_indices(clip.num_frames)
        if max(indices) >= len(files):
            raise DataError(
                f"line {clip.line}: {clip.folder} has {counted(len(files), 'frame')}, "
                f"the list says {clip.num_frames}"
            )
        return load_frames([files[i] for i in indices]), clip_fbank(clip)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, torch.Tensor, int]:
        clip = self.clips[index]
        generator = self._generator(index)
        if isinstance(clip, FrameFolderClip):
            frames, fbank = self._frame_folder(clip, generator)
        else:
            assert self.span_loader is not None
            frames, fbank = self.span_loader(clip, generator if self.train else None)
        if self.train:
            images = augment.train_transform(frames, self.image_size, generator, self.brightness)
        else:
            images = augment.test_transform(frames, self.image_size)
        return images, clip.label, fbank.reshape(1, *fbank.shape[-2:]).float(), index

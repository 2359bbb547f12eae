"""How far the low-precision modes move the model's output from float32.

For each mode (bfloat16 and float16 autocast, and bfloat16 with the weights
themselves cast, as ``--precision bfloat16`` runs on CUDA) it prints the
largest and mean absolute logit difference from float32, the largest
probability difference, and how often the argmax label agrees. Weights: the reference recipe (every released key filled
deterministically, with open fusion gates; needs ../shared/reference) or an
imported checkpoint. Inputs: random clips, and clips of a real face
(skimage's astronaut, moved a little frame to frame) with real speech.

    python benchmarks/autocast_drift.py --device cuda --batch 16
    python benchmarks/autocast_drift.py --device cpu --batch 2        # no float16 on the CPU
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mmadfer_cli.model import MMADFERConfig, build_model, load_checkpoint  # noqa: E402
from mmadfer_cli.model.checkpoints import IGNORED_KEYS  # noqa: E402
from mmadfer_cli.model.inference import cast_weights, check_precision, predict_logits  # noqa: E402
from tests.model_helpers import reference_state_dict  # noqa: E402

REFERENCE = REPO.parent / "shared" / "reference"
# (precision, bfloat16 mode); the weights cast last, in place (no second copy of the model).
MODES = (("bfloat16", "autocast"), ("float16", "autocast"), ("bfloat16", "weights"))


def recipe_model() -> torch.nn.Module:
    state = {k.removeprefix("module."): v for k, v in reference_state_dict(REFERENCE).items()}
    model = build_model(MMADFERConfig())
    model.load_state_dict({k: v for k, v in state.items() if k not in IGNORED_KEYS})
    return model.eval()


def random_clips(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(batch, 16, 3, 224, 224, generator=g) * 255).to(torch.uint8)
    return images, torch.randn(batch, 1, 512, 128, generator=g)


def face_clips(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The astronaut's face, shifted and rescaled slightly per frame, with speech from the reference WAVs."""
    from skimage.data import astronaut

    from mmadfer_cli.media.fbank import batch_fbank
    from tests.test_audio import read_wav

    photo = torch.from_numpy(astronaut()).permute(2, 0, 1).float()
    clips = []
    for b in range(batch):
        frames = []
        for t in range(16):
            top, left, side = 20 + 2 * ((t + b) % 5), 150 + 3 * ((t * 2 + b) % 4), 180 + 4 * (b % 3)
            crop = photo[:, top : top + side, left : left + side][None]
            frames.append(F.interpolate(crop, size=(224, 224), mode="bilinear", antialias=True))
        clips.append(torch.cat(frames).round().clamp(0, 255).to(torch.uint8))
    wavs = [read_wav(p) for p in sorted((REFERENCE / "wav").glob("*.wav"))]
    audio = batch_fbank(
        [wavs[b % len(wavs)][0] for b in range(batch)],
        [wavs[b % len(wavs)][1] for b in range(batch)],
    )
    return torch.stack(clips), audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--batch", type=int, default=2, help="clips per input kind (default: %(default)s)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="an imported or official checkpoint instead of the recipe"
    )
    args = parser.parse_args()

    device = torch.device(args.device)
    model = (load_checkpoint(args.checkpoint) if args.checkpoint else recipe_model()).to(device)
    print(f"device {device}, weights {args.checkpoint or 'reference recipe'}, batch {args.batch}")
    print(
        f"{'inputs':>7} {'precision':>9} {'mode':>8} {'max|dlogit|':>11} {'mean|dlogit|':>12} "
        f"{'max|dprob|':>10} {'argmax agree':>12}"
    )
    inputs = {
        kind: make(args.batch) for kind, make in (("random", random_clips), ("face", face_clips))
    }
    reference = {
        kind: predict_logits(model, *clips, device, "float32") for kind, clips in inputs.items()
    }
    for precision, mode in MODES:
        try:
            check_precision(precision, device)
        except ValueError:
            continue
        model = cast_weights(model, precision, mode)
        for kind, clips in inputs.items():
            logits = predict_logits(model, *clips, device, precision)
            diff = (logits - reference[kind]).abs()
            dprob = (logits.softmax(-1) - reference[kind].softmax(-1)).abs().max()
            agree = (logits.argmax(-1) == reference[kind].argmax(-1)).float().mean()
            print(
                f"{kind:>7} {precision:>9} {mode:>8} {diff.max():>11.2e} {diff.mean():>12.2e} "
                f"{dprob:>10.2e} {agree:>12.0%}"
            )


if __name__ == "__main__":
    main()

"""Make ``docs/timeline.png``, the README's example timeline, from a sample video.

Annotates ``sample_videos/group_conversation.mp4`` (six faces) with 1-second
segments through the Python API and draws the timeline of the first people
found. With ``--checkpoint`` it uses your model; without one it uses an
untrained tiny model, so the picture shows the layout, not real emotions.

Usage: ``python scripts/make_docs_timeline.py [--checkpoint FILE] [--out docs/timeline.png]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from mmadfer_cli import annotate, plot_timeline
from mmadfer_cli.model import MMADFERConfig, build_model, save_checkpoint
from mmadfer_cli.table.read import person_column

REPO = Path(__file__).resolve().parent.parent
VIDEO = REPO / "sample_videos" / "group_conversation.mp4"
GAIN = 1.5


def _untrained(folder: Path) -> Path:
    """A tiny untrained model whose head is centred and scaled on this video's features.

    A random network maps every clip to nearly the same feature, so its
    probabilities hardly move; centring the head on the mean feature and
    scaling it lets the small differences between people and moments show,
    which is all a layout picture needs.
    """
    torch.manual_seed(0)
    model = build_model(MMADFERConfig.tiny())
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "all_gate" in name:  # open the fusion gates (closed at init): audio counts
                p.fill_(0.5)
    path = folder / "untrained.safetensors"
    save_checkpoint(model, path)
    features: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if (
            module.__class__.__name__ == "Linear"
            and module.out_features == len(model.config.class_names)
            and module.in_features == model.our_classifier.in_features
        ):
            features.append(inputs[0].detach().float().reshape(-1, module.in_features))

    hook = torch.nn.modules.module.register_module_forward_pre_hook(keep)
    try:
        annotate(VIDEO, checkpoint=path, window=1.0, detector="dlib")
    finally:
        hook.remove()
    feats = torch.cat(features)
    mean, spread = feats.mean(0), feats.std(0) + 1e-6
    with torch.no_grad():
        weight = model.our_classifier.weight / spread
        model.our_classifier.weight.copy_(GAIN * weight)
        model.our_classifier.bias.copy_(-GAIN * weight @ mean)
    save_checkpoint(model, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, help="a trained model (default: untrained)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "timeline.png")
    parser.add_argument("--people", type=int, default=3, help="people shown (default: 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or _untrained(Path(tmp))
        df = annotate(VIDEO, checkpoint=checkpoint, window=1.0, detector="dlib")
    person = person_column(df)
    keep = df[person].isna() | df[person].isin(sorted(df[person].dropna().unique())[: args.people])
    df = df[keep]
    df["video"] = VIDEO.name
    fig = plot_timeline(df, VIDEO.name, width=9.0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()

"""The "Examples" block at the end of each command's ``--help``: command lines to copy, each with
what it does. Kept here, apart from the flags, so that every command's examples read alike."""

from __future__ import annotations

from rich.markup import escape


def examples(*lines: tuple[str, str]) -> str:
    """An epilog of (command line, what it does) pairs, the comments aligned as in a shell."""
    width = max((len(command) for command, comment in lines if comment), default=0)
    shown = "\n".join(
        f"{escape(command):<{width}}  [dim]# {escape(comment)}[/]" if comment else escape(command)
        for command, comment in lines
    )
    return f"[bold]Examples[/]\n\n{shown}"


ROOT = examples(
    ("mmadfer models import DFEW_fold1.pth --name dfew1", "once: the model to annotate with"),
    ("mmadfer annotate ./videos --out results.parquet", "one table, a row per person and segment"),
    ("mmadfer report results.parquet --out report/", "summaries, timelines, report/index.html"),
    ("mmadfer doctor", "check this installation"),
)
ANNOTATE = examples(
    ("mmadfer annotate ./videos --out results.parquet", "every video in the folder, one table"),
    ("mmadfer annotate a.mp4 b.mp4 --out results/", "one Parquet file per video"),
    ("mmadfer annotate ./videos --out results.csv --device cpu", "CSV, on the CPU"),
    ("mmadfer annotate ./sessions --out s.parquet --reid-scope run", "same people in every video"),
    (
        "mmadfer annotate group.mp4 --out g.parquet --soundtrack silent",
        "faces judged without sound",
    ),
    ("mmadfer annotate ./videos --out - | head", "CSV on stdout"),
)
REPORT = examples(
    ("mmadfer report results.parquet --out report/", "then open report/index.html"),
    ("mmadfer report results.csv --out report/ --dpi 150", "sharper timeline pictures"),
)
EXPORT = examples(
    ("mmadfer export eaf results.parquet --out elan/", "ELAN files, one per video"),
    ("mmadfer export srt results.parquet --out subtitles/", "SubRip subtitles"),
    ("mmadfer export vtt results.parquet --out subtitles/", "WebVTT subtitles"),
)
EXPORT_EAF = examples(
    ("mmadfer export eaf results.parquet --out elan/", "one .eaf per video"),
    ("mmadfer export eaf results.parquet --out elan/ --media-root ./videos", "link the videos"),
)
EXPORT_SRT = examples(
    ("mmadfer export srt results.parquet --out ./videos", "beside the videos: players load them"),
)
EXPORT_VTT = examples(
    ("mmadfer export vtt results.parquet --out subtitles/", "for browsers' <track> element"),
)
OVERLAY = examples(
    ("mmadfer overlay interview.mp4 results.parquet --out interview.annotated.mp4", ""),
    ("mmadfer overlay interview.mp4 results.parquet --out check.mp4 --crf 28", "smaller file"),
)
DOCTOR = examples(
    ("mmadfer doctor", "the sample video, on the best device"),
    ("mmadfer doctor --video ./videos/one.mp4 --device cpu", "your own video, on the CPU"),
    ("mmadfer doctor --engine ray --ray-address auto --video /shared/one.mp4", "every node"),
)
MODELS = examples(
    ("mmadfer models import DFEW_fold1.pth --name dfew1", "prints the name"),
    ("mmadfer models list", "--json for scripts"),
    ("mmadfer models info dfew1", "source file, sha256, class names, path"),
    ("mmadfer models remove dfew1", ""),
)
MODELS_IMPORT = examples(
    ("mmadfer models import DFEW_fold1.pth --name dfew1", "an official checkpoint"),
    ("mmadfer models import runs/dfew1/best.safetensors --name mine", "one you trained"),
)
MODELS_LIST = examples(("mmadfer models list --json", "for scripts"))
MODELS_INFO = examples(("mmadfer models info dfew1 --json", "for scripts"))
MODELS_REMOVE = examples(("mmadfer models remove dfew1", ""))
EVALUATE = examples(
    ("mmadfer evaluate DFEW_set_1_test.txt --model dfew1 --out eval_fold1", "WAR, UAR, confusion"),
    ("mmadfer evaluate clips.csv --checkpoint best.safetensors --out eval", "your labelled clips"),
)
TRAIN = examples(
    (
        "mmadfer train DFEW_set_1_train.txt --val DFEW_set_1_test.txt --out runs/dfew1 "
        "--image-encoder mae_face_pretrain_vit_base.pth --audio-encoder audiomae_pretrained.pth",
        "",
    ),
    ("mmadfer train ... --out runs/dfew1 --resume", "after an interruption"),
    ("torchrun --nproc-per-node 4 -m mmadfer_cli train ...", "several GPUs"),
)

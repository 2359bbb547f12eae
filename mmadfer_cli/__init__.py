"""mmadfer: per-person audio-visual emotion timelines for video collections, with MMA-DFER.

The notebook API (imported on first use, so that ``import mmadfer_cli`` stays light)::

    from mmadfer_cli import annotate, read_results, summarize, plot_timeline
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

_API = {
    "annotate": "mmadfer_cli.api",
    "UsageError": "mmadfer_cli.api",
    "RunStopped": "mmadfer_cli.api",
    "read_results": "mmadfer_cli.table.read",
    "summarize": "mmadfer_cli.reporting.summary",
    "summarize_videos": "mmadfer_cli.reporting.summary",
    "plot_timeline": "mmadfer_cli.reporting.timeline",
    "write_report": "mmadfer_cli.reporting.html_report",
    "export_eaf": "mmadfer_cli.reporting.exports",
    "export_subtitles": "mmadfer_cli.reporting.exports",
    "write_overlay": "mmadfer_cli.reporting.overlay_video",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

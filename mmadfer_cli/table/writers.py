"""Writing a result table to a file: the formats, their detection from ``--out``, atomic writes.

A file is written under a temporary name and then renamed (``files.replace``), so a
half-written file never replaces a whole one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from mmadfer_cli.table.files import replace

Format = Literal["parquet", "csv", "jsonl"]
FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")
EXTENSIONS: dict[str, Format] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


class OutputError(Exception):
    """A usage problem with ``--out``/``--format`` or with resuming (exit code 2)."""


def atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(tmp_path)`` then rename, so ``path`` is never half written."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def _json_value(value: Any) -> Any:
    # float32 values widen to long doubles in Python; print them as float32 does.
    if isinstance(value, float) and np.isfinite(value):
        return float(str(np.float32(value)))
    return value


def _write_jsonl(table: pa.Table, fh: IO[str]) -> None:
    float32 = {f.name for f in table.schema if f.type == pa.float32()}
    for row in table.to_pylist():
        out = {k: (_json_value(v) if k in float32 else v) for k, v in row.items()}
        fh.write(json.dumps(out, ensure_ascii=False) + "\n")


def write_table(table: pa.Table, path: Path, fmt: Format) -> None:
    """Write a whole table to ``path`` atomically in the given format."""

    def write(tmp: Path) -> None:
        if fmt == "parquet":
            write_parquet(table, tmp)
        elif fmt == "csv":
            pa_csv.write_csv(table, tmp)
        else:
            with open(tmp, "w", encoding="utf-8") as fh:
                _write_jsonl(table, fh)

    atomic_write(path, write)


def detect_format(out: str, fmt: str | None) -> tuple[Format, bool]:
    """The output format and whether ``out`` is a directory (one Parquet file per video)."""
    if fmt is not None and fmt not in FORMATS:
        raise OutputError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out == "-":
        if fmt not in (None, "csv"):
            raise OutputError("--out - streams CSV to stdout; --format must be csv")
        return "csv", False
    path = Path(out)
    is_dir = path.is_dir() or out.endswith(("/", os.sep)) or (not path.exists() and not path.suffix)
    if is_dir:
        if fmt not in (None, "parquet"):
            raise OutputError(
                f"an output directory holds one Parquet file per video; --format {fmt} needs a file name"
            )
        return "parquet", True
    if fmt is not None:
        return fmt, False  # type: ignore[return-value]
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        raise OutputError(
            f"cannot tell the format of {out!r} from its extension; pass --format {'|'.join(FORMATS)}"
        )
    return EXTENSIONS[ext], False

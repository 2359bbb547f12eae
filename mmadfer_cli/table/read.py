"""Read a result table back, in any form ``annotate`` writes, as a checked pandas DataFrame.

Reports, exports, the overlay video and notebooks all start here, so a file
that is not a result table (or lacks the columns they need) is refused once,
with a message that names the file and what is missing, instead of failing
later with a ``KeyError``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from mmadfer_cli.plural import agree
from mmadfer_cli.table.schema import METADATA_KEY, row_schema
from mmadfer_cli.table.sinks import neutralised_csv, run_record
from mmadfer_cli.table.spreadsheet import restore_table
from mmadfer_cli.table.writers import EXTENSIONS

REQUIRED_COLUMNS: tuple[str, ...] = (
    "video",
    "video_id",
    "track_id",
    "segment",
    "start_s",
    "end_s",
    "status",
    "error",
    "label",
    "confidence",
)
BOX_COLUMNS: tuple[str, ...] = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")
STATUSES = frozenset({"ok", "no_face", "error"})
PROB_PREFIX = "prob_"

# Column types of the contract (prob_<class> columns are float32 whatever the classes).
_BASE_TYPES: dict[str, pa.DataType] = {f.name: f.type for f in row_schema(())}
_PANDAS_TYPES = {
    pa.int32(): pd.Int64Dtype(),
    pa.int64(): pd.Int64Dtype(),
    pa.bool_(): pd.BooleanDtype(),
}


class ResultsError(Exception):
    """A file or directory that cannot be used as a result table (exit code 2 in the CLI)."""


def class_names(df: pd.DataFrame) -> list[str]:
    """The model's classes, in the table's column order (``prob_<class>`` columns)."""
    return [c.removeprefix(PROB_PREFIX) for c in df.columns if c.startswith(PROB_PREFIX)]


def person_column(df: pd.DataFrame) -> str:
    """The column that names a person: ``person_id`` (re-identified) when it has values, else
    ``track_id`` (a run with ``--no-reid`` leaves ``person_id`` empty)."""
    has_people = "person_id" in df.columns and bool(df["person_id"].notna().any())
    return "person_id" if has_people else "track_id"


def person_label(value: object) -> str:
    """How a person is named in pictures, tiers and subtitles: ``person 3``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"person {value}"


def segment_spans(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Start and end seconds of rows (sorted by start), each end cut at the next row's start, so
    that overlapping segments (``--stride`` below ``--window``) become a sequence without overlap."""
    starts = rows["start_s"].to_numpy(float)
    ends = rows["end_s"].to_numpy(float)
    if len(starts) > 1:
        ends = np.concatenate([np.minimum(ends[:-1], starts[1:]), ends[-1:]])
    return starts, np.maximum(ends, starts)


def video_order(df: pd.DataFrame) -> list[str]:
    """The videos of a table in the order they first appear (the input order for a result file)."""
    return list(dict.fromkeys(df["video"].tolist()))


def _text_types(names: Sequence[str]) -> dict[str, pa.DataType]:
    """Text columns of the contract stay text (a video named ``001`` is not a number); numbers
    are inferred and conformed afterwards, so tables re-saved by pandas or R still read."""
    return {n: pa.string() for n in names if _BASE_TYPES.get(n) == pa.string()}


def _conform(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """The contract's dtypes: nullable integers and booleans, float32 probabilities."""
    for name in df.columns:
        kind = _BASE_TYPES.get(name, pa.float32() if name.startswith(PROB_PREFIX) else None)
        if kind is None or kind == pa.string():
            continue
        try:
            if pa.types.is_integer(kind):
                df[name] = pd.to_numeric(df[name]).astype("Int64")
            elif pa.types.is_boolean(kind):
                df[name] = df[name].astype("boolean")
            else:
                df[name] = pd.to_numeric(df[name]).astype(
                    "float32" if kind == pa.float32() else float
                )
        except (TypeError, ValueError) as exc:
            raise ResultsError(
                f"{where}: column {name} has values of the wrong type ({exc})"
            ) from exc
    return df


def _read_csv(path: Path) -> pa.Table:
    """The CSV's rows; one written for spreadsheets (its run file says so) with its true text."""
    with open(path, encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])
    convert = pa_csv.ConvertOptions(column_types=_text_types(header), strings_can_be_null=True)
    table = pa_csv.read_csv(path, convert_options=convert)
    return restore_table(table) if neutralised_csv(path) else table


def _read_jsonl(path: Path) -> pa.Table:
    # Types of the columns present come from the contract; others are inferred.
    with open(path, encoding="utf-8") as fh:
        first = fh.readline()
    names = list(json.loads(first)) if first.strip() else []
    schema = pa.schema(list(_text_types(names).items()))
    options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
    table = pa_json.read_json(path, parse_options=options)
    order = [n for n in names if n in table.column_names]
    return table.select(order + [n for n in table.column_names if n not in order])


def _parquet_metadata(table: pa.Table) -> dict[str, Any]:
    meta = table.schema.metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


def _read_directory(path: Path) -> pa.Table:
    files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith("."))
    tables = []
    for file in files:
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowException):
            continue  # a foreign or half-written file beside the results
        if METADATA_KEY in (table.schema.metadata or {}):
            tables.append(table)
    if not tables:
        raise ResultsError(f"{path}: no mmadfer result files (*.parquet) in this directory")
    return pa.concat_tables(tables, promote_options="default")


def _read_table(path: Path) -> pa.Table:
    if path.is_dir():
        return _read_directory(path)
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(EXTENSIONS))
        raise ResultsError(
            f"{path}: not a result table (expected a directory or a file ending in {known})"
        )
    try:
        if fmt == "parquet":
            return pq.read_table(path)
        if fmt == "csv":
            return _read_csv(path)
        return _read_jsonl(path)
    except (pa.ArrowException, UnicodeDecodeError, ValueError, csv.Error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResultsError(f"{path}: not a readable {fmt} result table ({first})") from exc


def check_results(df: pd.DataFrame, where: str = "the table", needs: Sequence[str] = ()) -> None:
    """Raise ``ResultsError`` when ``df`` lacks the contract's columns (and ``needs``)."""
    missing = [c for c in (*REQUIRED_COLUMNS, *needs) if c not in df.columns]
    if missing:
        raise ResultsError(
            f"{where} is not an mmadfer result table: missing "
            f"{agree(len(missing), 'column')} {', '.join(missing)}"
        )
    if not class_names(df):
        raise ResultsError(f"{where} has no class probability columns (prob_<class>)")
    odd = sorted(set(df["status"].dropna().astype(str)) - STATUSES)
    if odd:
        raise ResultsError(
            f"{where} has unknown status {agree(len(odd), 'value')} {', '.join(map(repr, odd))}; "
            f"expected {', '.join(sorted(STATUSES))}"
        )


def table_frame(table: pa.Table) -> pd.DataFrame:
    """A result table as pandas: nullable integers and booleans, so missing values stay missing."""
    return table.replace_schema_metadata(None).to_pandas(types_mapper=_PANDAS_TYPES.get)


def read_results(path: str | Path) -> pd.DataFrame:
    """A result table from a ``.parquet``, ``.csv`` or ``.jsonl`` file or a results directory.

    Typed as ``annotate`` writes it (nullable integers, float32 probabilities);
    the run's provenance (model, checksum, settings, versions: a Parquet file's metadata, or the
    ``<out>.run.json`` beside a CSV or JSONL file) is kept in ``df.attrs["mmadfer"]``. Raises ``ResultsError`` for anything that is not a
    result table.
    """
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    table = _read_table(path)
    metadata = _parquet_metadata(table) or (run_record(path) if path.is_file() else None)
    df = table_frame(table)
    check_results(df, str(path))
    df = _conform(df, str(path))
    if metadata:
        df.attrs["mmadfer"] = metadata
    return df

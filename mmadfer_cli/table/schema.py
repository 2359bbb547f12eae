"""The result table's schema and the run information every output file carries.

One row per (video, person track, segment) with ``status=ok``; ``no_face`` rows
for segments without any track, so a timeline has no silent holes; one
``error`` row per video that failed. Column names are a contract (README, "The results
table"): scripts that read the results depend on them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

METADATA_KEY = b"mmadfer"


def prob_column(class_name: str) -> str:
    """Column holding the probability of one class."""
    return f"prob_{class_name}"


def row_schema(class_names: Sequence[str]) -> pa.Schema:
    """The typed schema of the result table for a model with these classes."""
    fields = [
        pa.field("video", pa.string(), nullable=False),
        pa.field("video_id", pa.string()),
        pa.field("track_id", pa.int32()),
        pa.field("person_id", pa.int32()),
        pa.field("segment", pa.int32()),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("label", pa.string()),
        pa.field("confidence", pa.float32()),
        *(pa.field(prob_column(name), pa.float32()) for name in class_names),
        pa.field("face_frames", pa.int32()),
        pa.field("face_score", pa.float32()),
        pa.field("bbox_x", pa.float32()),
        pa.field("bbox_y", pa.float32()),
        pa.field("bbox_w", pa.float32()),
        pa.field("bbox_h", pa.float32()),
        pa.field("has_audio", pa.bool_()),
    ]
    return pa.schema(fields)


def rows_table(rows: Iterable[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts, missing keys are nulls) as a table with the result schema."""
    return pa.Table.from_pylist(list(rows), schema=schema)


@dataclass(frozen=True)
class RunInfo:
    """What produced a table: stored in every file's metadata, compared on resume."""

    model_name: str
    model_sha256: str
    class_names: tuple[str, ...]
    settings: dict[str, Any]
    tool_version: str
    torch_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        """The parts that decide the rows: a resumed run must match them exactly."""
        return {
            "model_sha256": self.model_sha256,
            "class_names": list(self.class_names),
            "settings": self.settings,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "model": {
                "name": self.model_name,
                "sha256": self.model_sha256,
                "class_names": list(self.class_names),
            },
            "settings": self.settings,
            "tool_version": self.tool_version,
            "torch_version": self.torch_version,
            **self.extra,
        }

    def schema(self) -> pa.Schema:
        """The result schema with this run's metadata attached (and pandas', see
        ``pandas_metadata``)."""
        schema = row_schema(self.class_names)
        meta = {
            METADATA_KEY: json.dumps(self.to_json(), sort_keys=True).encode(),
            b"pandas": pandas_metadata(schema),
        }
        return schema.with_metadata(meta)


_NULLABLE = {pa.int32(): ("int32", "Int32"), pa.bool_(): ("bool", "boolean")}


def pandas_metadata(schema: pa.Schema) -> bytes:
    """pandas' own metadata for the integer and boolean columns, so that a plain
    ``pd.read_parquet`` gives them as nullable ``Int32`` and ``boolean`` (without it, a table
    with error or no-face rows, where they are empty, reads as float64 and object)."""
    columns = [
        {"name": f.name, "field_name": f.name, "pandas_type": _NULLABLE[f.type][0],
         "numpy_type": _NULLABLE[f.type][1], "metadata": None}
        for f in schema
        if f.type in _NULLABLE
    ]  # fmt: skip
    meta = {"index_columns": [], "column_indexes": [], "columns": columns,
            "creator": {"library": "mmadfer"}}  # fmt: skip
    return json.dumps(meta).encode()

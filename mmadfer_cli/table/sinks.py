"""Where a run's rows go: sinks (one file, a folder, stdout, memory), resume and the lock.

Nothing computed is lost: each finished video's rows are written to their own
Parquet part (temporary name, then renamed: ``files.replace``) as soon as the video is
done, so an interrupted run restarts where it stopped. A single-file output is
assembled from the parts at the end and replaced atomically.

A finished output grows: a run of the same settings on a finished single file
reads its rows back into parts (one per video), runs only the videos it lacks
and writes the file again. The settings are checked against the file's own
metadata (Parquet) or, for CSV and JSONL, which hold no metadata, against
``<out>.run.json`` written beside them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from mmadfer_cli.table.lock import OutputLock
from mmadfer_cli.table.schema import METADATA_KEY, RunInfo
from mmadfer_cli.table.spreadsheet import neutral_table, restore_table
from mmadfer_cli.table.writers import (
    Format,
    OutputError,
    atomic_write,
    detect_format,
    write_parquet,
    write_table,
)

_RUN_FILE = "run.json"
_DIR_RUN_FILE = ".mmadfer-run.json"
_DIR_LOCK_FILE = ".mmadfer.lock"
_SPREADSHEET_KEY = "csv_for_spreadsheets"  # in a CSV's run file: its text cells were neutralised


class Finished(NamedTuple):
    """A video an earlier run finished."""

    video_id: str | None
    error: str | None  # why the whole video failed
    damaged: list[tuple[float, float, str]]  # segments that could not be read: start, end, why


Done = dict[str, Finished]
"""Videos finished by an earlier run, by the ``video`` column."""


def read_metadata(path: Path) -> dict[str, Any]:
    """The run metadata stored in a Parquet result file."""
    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise OutputError(
            f"{path} is not an mmadfer result file (no {METADATA_KEY.decode()} metadata)"
        )
    return json.loads(meta[METADATA_KEY])


def video_key(video: str) -> str:
    """A short stable file-name key for a video as given on the command line."""
    return hashlib.sha256(video.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class Sink:
    """Where finished videos' rows go. ``done`` lists videos a previous run already finished;
    ``durable`` is where finished videos' rows are kept until the end (None for stdout)."""

    durable: Path | None = None

    def done(self) -> Done:
        """Videos an earlier run with this output already finished."""
        return {}

    def write(self, video: str, table: pa.Table) -> None:
        raise NotImplementedError

    def close(self, videos: Sequence[str]) -> Path | None:
        """Called when every video of ``videos`` is finished: write the final output."""
        return None


class StdoutCsvSink(Sink):
    """CSV on stdout, one header, rows flushed as each video finishes (for shell pipes);
    ``spreadsheet``: formula-like text cells neutralised (``table.spreadsheet``)."""

    def __init__(
        self, schema: pa.Schema, stream: IO[bytes] | None = None, spreadsheet: bool = False
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._writer = pa_csv.CSVWriter(self._stream, schema)
        self._spreadsheet = spreadsheet

    def write(self, video: str, table: pa.Table) -> None:
        self._writer.write_table(neutral_table(table) if self._spreadsheet else table)
        self._stream.flush()

    def close(self, videos: Sequence[str]) -> Path | None:
        self._writer.close()
        self._stream.flush()
        return None


SETTINGS_ADDED = {"soundtrack": "video"}
"""Settings that outputs written before them do not record, with the value those runs had."""


def _check_run(run_file: Path, run: RunInfo, overwrite: bool, where: Path) -> None:
    """Refuse to mix rows of a different model or settings into a resumed output."""
    if not run_file.exists() or overwrite:
        return
    _check_fingerprint(json.loads(run_file.read_text()), run, where)


def _check_fingerprint(previous: dict[str, Any], run: RunInfo, where: Path) -> None:
    """Refuse, naming what changed, when ``previous`` is not this run's fingerprint."""
    current = run.fingerprint()
    if previous == current:
        return
    changed = []
    if previous.get("model_sha256") != current["model_sha256"]:
        changed.append("model")
    if previous.get("class_names") != current["class_names"]:
        changed.append("class names")
    old_settings = {**SETTINGS_ADDED, **previous.get("settings", {})}
    changed += [
        k
        for k in sorted(set(old_settings) | set(current["settings"]))
        if old_settings.get(k) != current["settings"].get(k)
    ]
    if not changed:  # an output older than a setting, made as its default makes them
        return
    raise OutputError(
        f"{where} holds results of an earlier run with a different {', '.join(changed)}; "
        "rerun with the same options to resume, or pass --overwrite to start again"
    )


def _write_run_file(path: Path, run: RunInfo) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(run.fingerprint(), sort_keys=True)))


def _parts_done(files: Iterable[Path]) -> Done:
    done: Done = {}
    for path in files:
        try:
            table = pq.read_table(path, columns=["video", "video_id", "segment", "start_s",
                                                 "end_s", "error"])  # fmt: skip
        except (OSError, pa.ArrowException):
            continue  # unreadable part: the video is simply done again
        if table.num_rows:
            rows = table.to_pylist()
            first = rows[0]
            whole = first["error"] if first["segment"] is None else None
            damaged = sorted(
                (r["start_s"], r["end_s"], r["error"])
                for r in rows
                if r["error"] is not None and r["segment"] is not None
            )
            done[first["video"]] = Finished(first["video_id"], whole, damaged)
    return done


def _finished_run(out: Path, fmt: Format) -> dict[str, Any] | None:
    """The fingerprint of the run that wrote the finished file ``out`` (None: not recorded)."""
    if fmt == "parquet":
        meta = read_metadata(out)
        model = meta.get("model", {})
        return {"model_sha256": model.get("sha256"), "class_names": model.get("class_names"),
                "settings": meta.get("settings", {})}  # fmt: skip
    beside = _beside_run_file(out)
    if not beside.exists():
        return None
    meta = json.loads(beside.read_text(encoding="utf-8"))
    return {"model_sha256": meta["model"]["sha256"], "class_names": meta["model"]["class_names"],
            "settings": meta["settings"]}  # fmt: skip


def _beside_run_file(out: Path) -> Path:
    """Where a CSV or JSONL output's run information is kept (those formats hold none)."""
    return out.with_name(out.name + ".run.json")


def run_record(out: Path) -> dict[str, Any] | None:
    """The provenance a CSV or JSONL output keeps beside it (``<out>.run.json``: model, checksum,
    class names, settings, versions, as a Parquet file's metadata); None when there is none."""
    try:
        record = json.loads(_beside_run_file(out).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def neutralised_csv(out: Path) -> bool:
    """Whether the CSV file ``out`` was written for spreadsheets (its run file says so): its
    text cells that begin with a quote have one more than their true text."""
    return bool((run_record(out) or {}).get(_SPREADSHEET_KEY))


def _read_back(out: Path, fmt: Format, schema: pa.Schema) -> pa.Table:
    """A finished output's rows with the result schema (CSV and JSONL typed by it)."""
    if fmt == "parquet":
        return pq.read_table(out, schema=schema)
    if fmt == "csv":
        types = {f.name: f.type for f in schema}
        convert = pa_csv.ConvertOptions(column_types=types, strings_can_be_null=True,
                                        quoted_strings_can_be_null=False)  # fmt: skip
        table = pa_csv.read_csv(out, convert_options=convert)
        table = restore_table(table) if neutralised_csv(out) else table
    else:
        options = pa_json.ParseOptions(explicit_schema=schema)
        table = pa_json.read_json(out, parse_options=options)
    return table.select(schema.names).cast(schema)


class FileSink(Sink):
    """A single result file, built from per-video Parquet parts in ``<out>.parts/``."""

    def __init__(
        self, out: Path, fmt: Format, run: RunInfo, overwrite: bool, spreadsheet: bool = False
    ) -> None:
        self.out, self.fmt, self.schema, self.run = out, fmt, run.schema(), run
        self.spreadsheet = spreadsheet and fmt == "csv"
        self.parts = self.durable = out.with_name(out.name + ".parts")
        run_file = self.parts / _RUN_FILE
        seed = None
        if overwrite:
            shutil.rmtree(self.parts, ignore_errors=True)
        elif out.exists() and not self.parts.exists():
            seed = self._finished(run)
        _check_run(run_file, run, overwrite, self.parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.parts.mkdir(exist_ok=True)
        _write_run_file(run_file, run)
        if seed is not None:
            for video in dict.fromkeys(seed["video"].to_pylist()):
                self.write(video, seed.filter(pc.equal(seed["video"], video)))
        done = _parts_done(self.parts.glob("*.parquet"))
        order = [] if seed is None else seed["video"].to_pylist()
        self._done = {v: done[v] for v in dict.fromkeys(order) if v in done} | done
        # A grown file that gains nothing stays as it is (not rewritten), unless this run wants
        # its CSV cells in the other form.
        self._as_is = seed is not None and (
            fmt != "csv" or self.spreadsheet == neutralised_csv(out)
        )

    def _finished(self, run: RunInfo) -> pa.Table:
        """The rows of the finished output, to grow it: refused when it does not record its
        settings or they differ from this run's."""
        try:
            previous = _finished_run(self.out, self.fmt)
        except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
            raise OutputError(f"{self.out} already exists and is not an mmadfer result file "
                              f"({exc}); pass --overwrite to replace it") from exc  # fmt: skip
        if previous is None:
            raise OutputError(
                f"{self.out} already exists and its settings are not recorded (no "
                f"{_beside_run_file(self.out).name} beside it), so it cannot grow; "
                "pass --overwrite to replace it"
            )
        _check_fingerprint(previous, run, self.out)
        try:
            return _read_back(self.out, self.fmt, self.schema)
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"{self.out} cannot be read back to add videos to it ({exc}); "
                              "pass --overwrite to replace it") from exc  # fmt: skip

    def done(self) -> Done:
        return self._done

    def _part(self, video: str) -> Path:
        return self.parts / f"{video_key(video)}.parquet"

    def write(self, video: str, table: pa.Table) -> None:
        atomic_write(self._part(video), lambda tmp: write_parquet(table, tmp))
        self._as_is = False

    def close(self, videos: Sequence[str]) -> Path:
        """The output: this run's videos in order, then those the output held that this run
        was not given (a grown output keeps its rows)."""
        if self._as_is:
            shutil.rmtree(self.parts)
            return self.out
        given = set(videos)
        held = [v for v in self._done if v not in given]
        tables = [pq.read_table(self._part(v), schema=self.schema) for v in [*videos, *held]]
        table = pa.concat_tables(tables) if tables else self.schema.empty_table()
        table = neutral_table(table) if self.spreadsheet else table
        write_table(table.replace_schema_metadata(self.schema.metadata), self.out, self.fmt)
        if self.fmt != "parquet":
            record = {**self.run.to_json(), _SPREADSHEET_KEY: self.spreadsheet}
            run_json = json.dumps(record, sort_keys=True, indent=1)
            atomic_write(_beside_run_file(self.out), lambda tmp: tmp.write_text(run_json))
        shutil.rmtree(self.parts)
        return self.out


class DirectorySink(Sink):
    """One Parquet file per video in a directory: a dataset DuckDB and Arrow read directly."""

    def __init__(self, out: Path, run: RunInfo, overwrite: bool) -> None:
        self.out, self.schema = out, run.schema()
        self.durable = out
        out.mkdir(parents=True, exist_ok=True)
        run_file = out / _DIR_RUN_FILE
        if overwrite:
            for path in self._ours():
                path.unlink()
        _check_run(run_file, run, overwrite, out)
        _write_run_file(run_file, run)
        self._done = _parts_done(self._ours())

    def _ours(self) -> list[Path]:
        ours = []
        for path in sorted(self.out.glob("*.parquet")):
            try:
                meta = pq.read_schema(path).metadata or {}
            except (OSError, pa.ArrowException):
                continue
            if METADATA_KEY in meta:
                ours.append(path)
        return ours

    def done(self) -> Done:
        return self._done

    def write(self, video: str, table: pa.Table) -> None:
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(video).stem)[:60]
        path = self.out / f"{stem}-{video_key(video)}.parquet"
        table = table.replace_schema_metadata(self.schema.metadata)
        atomic_write(path, lambda tmp: write_parquet(table, tmp))

    def close(self, videos: Sequence[str]) -> Path:
        return self.out


def output_lock(out: str, fmt: str | None) -> OutputLock | None:
    """The lock that keeps a second run off ``--out`` (none for stdout)."""
    _, is_dir = detect_format(out, fmt)
    if out == "-":
        return None
    path = Path(out)
    return OutputLock(path / _DIR_LOCK_FILE if is_dir else path.with_name(path.name + ".lock"))


def open_sink(
    out: str, fmt: str | None, run: RunInfo, overwrite: bool, spreadsheet: bool = False
) -> Sink:
    """The sink for ``--out`` (a file, a directory, or ``-`` for CSV on stdout); ``spreadsheet``:
    CSV text cells that a spreadsheet would run as formulas are neutralised."""
    fmt_, is_dir = detect_format(out, fmt)
    if out == "-":
        return StdoutCsvSink(run.schema(), spreadsheet=spreadsheet)
    if is_dir:
        return DirectorySink(Path(out), run, overwrite)
    return FileSink(Path(out), fmt_, run, overwrite, spreadsheet)


class MemorySink(Sink):
    """The rows kept in memory (the notebook ``annotate()`` without ``out=``): ``table`` holds
    them, videos in input order, once closed."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._tables: dict[str, pa.Table] = {}
        self.table = schema.empty_table()

    def write(self, video: str, table: pa.Table) -> None:
        self._tables[video] = table

    def close(self, videos: Sequence[str]) -> Path | None:
        parts = [self._tables[v] for v in videos if v in self._tables]
        self.table = pa.concat_tables(parts) if parts else self._schema.empty_table()
        return None

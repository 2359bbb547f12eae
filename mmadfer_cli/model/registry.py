"""The model cache: checkpoints imported once, converted to safetensors, chosen by name.

Layout under ``$MMADFER_HOME`` (default: the platform's user cache directory
``mmadfer``): ``models/NAME.safetensors`` with ``models/NAME.json`` beside it,
the record of where it came from. Nothing is ever downloaded here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import platformdirs

from mmadfer_cli.model.checkpoints import load_checkpoint, read_checkpoint, save_checkpoint
from mmadfer_cli.model.mmadfer import MMADFER

HOME_ENV = "MMADFER_HOME"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
IMPORT_HINT = (
    "import a checkpoint first: `mmadfer models import FILE` (the official DFEW and MAFW "
    "checkpoints are linked from github.com/katerynaCh/MMA-DFER), or pass --checkpoint FILE"
)


class RegistryError(ValueError):
    """A model name or cache problem; the message says what to do."""


class NoModelError(RegistryError):
    """No model was named and there is no single imported model to default to."""


@dataclass(frozen=True)
class ModelRecord:
    """An imported model. ``sha256`` is the source file's, so results trace back to the published file."""

    name: str
    path: Path
    sha256: str
    source: str
    class_names: tuple[str, ...]
    imported_at: str | None


def home() -> Path:
    """``$MMADFER_HOME``, or the platform's user cache directory for mmadfer."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("mmadfer"))


def models_dir() -> Path:
    return home() / "models"


def import_model(path: str | Path, name: str | None = None) -> ModelRecord:
    """Validate a checkpoint, convert it to safetensors in the cache and record it."""
    path = Path(path)
    name = name or _default_name(path)
    if not _NAME.match(name):
        raise RegistryError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (up to 100)"
        )
    if (models_dir() / f"{name}.json").exists():
        raise RegistryError(
            f"a model named {name!r} already exists; remove it (`mmadfer models remove {name}`) "
            "or choose another --name"
        )
    model, _ = read_checkpoint(path)
    record = ModelRecord(
        name=name,
        path=models_dir() / f"{name}.safetensors",
        sha256=file_sha256(path),
        source=path.name,
        class_names=model.config.class_names,
        imported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    record.path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(record.path, lambda tmp: save_checkpoint(model, tmp))
    _write_atomic(_record_path(name), lambda tmp: tmp.write_text(_to_json(record)))
    return record


def list_models() -> list[ModelRecord]:
    """Imported models, by name; records whose weights have gone missing are left out."""
    records = (_read_record(p) for p in sorted(models_dir().glob("*.json")))
    return [r for r in records if r is not None and r.path.is_file()]


def get_model(name: str) -> ModelRecord:
    record = _read_record(_record_path(name)) if _NAME.match(name) else None
    if record is None or not record.path.is_file():
        known = ", ".join(r.name for r in list_models()) or "none imported"
        raise RegistryError(f"no model named {name!r} (available: {known})")
    return record


def remove_model(name: str) -> ModelRecord:
    record = get_model(name)
    record.path.unlink(missing_ok=True)
    _record_path(name).unlink(missing_ok=True)
    return record


def resolve_model(
    model_name: str | None, checkpoint: Path | None, device: str = "cpu"
) -> tuple[MMADFER, ModelRecord]:
    """The model a command should use: ``--checkpoint FILE``, ``--model NAME``, or the only imported one."""
    if model_name is not None and checkpoint is not None:
        raise RegistryError("give either --model or --checkpoint, not both")
    if checkpoint is not None:
        model = load_checkpoint(checkpoint, device=device)
        record = ModelRecord(
            name=Path(checkpoint).stem,
            path=Path(checkpoint),
            sha256=file_sha256(Path(checkpoint)),
            source=Path(checkpoint).name,
            class_names=model.config.class_names,
            imported_at=None,
        )
        return model, record
    if model_name is None:
        records = list_models()
        if not records:
            raise NoModelError(f"no model available: {IMPORT_HINT}")
        if len(records) > 1:
            names = ", ".join(r.name for r in records)
            raise NoModelError(
                f"several models are imported ({names}); choose one with --model NAME"
            )
        record = records[0]
    else:
        record = get_model(model_name)
    return load_checkpoint(record.path, device=device), record


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _default_name(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._") or "model"


def _record_path(name: str) -> Path:
    return models_dir() / f"{name}.json"


def _to_json(record: ModelRecord) -> str:
    data = dataclasses.asdict(record)
    data["path"] = record.path.name  # relative: the cache can move with $MMADFER_HOME
    return json.dumps(data, indent=2) + "\n"


def _read_record(path: Path) -> ModelRecord | None:
    try:
        data = json.loads(path.read_text())
        return ModelRecord(
            name=data["name"],
            path=path.parent / data["path"],
            sha256=data["sha256"],
            source=data["source"],
            class_names=tuple(data["class_names"]),
            imported_at=data.get("imported_at"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder, so a crash leaves no half file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

"""The state file: one JSON document per meter, written so that a crash never tears it.

Write protocol (`save`): serialise, add a SHA-256 of the body, write a temporary file in the
same directory, flush and fsync it, `os.replace` it over the state file (atomic on POSIX),
then fsync the directory so the rename itself is durable.  A process killed at any instant
leaves either the complete old file or the complete new file; a leftover temporary file is
ignored and cleaned up by the next write.  `load` verifies the checksum, so a file damaged
outside this protocol is reported rather than silently used.

`locked(path)` serialises read-modify-write cycles of concurrent CLI calls on one meter.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sts.errors import MeterStateError
from sts.meter.state import STATE_FORMAT, STATE_VERSION, MeterState

TMP_SUFFIX = ".tmp"


def _digest(body: dict[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode(body: dict[str, Any]) -> bytes:
    doc = dict(body)
    doc["sha256"] = _digest(body)
    return (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode()


def decode(raw: bytes, path: str | os.PathLike[str] = "state") -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise MeterStateError(f"{path} is not valid JSON ({exc})", field="state") from None
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise MeterStateError(f"{path} is not a meter state file", field="state")
    if doc.get("version") != STATE_VERSION:
        raise MeterStateError(f"{path} has state version {doc.get('version')!r}; this program "
                              f"reads version {STATE_VERSION}", field="state")
    digest = doc.pop("sha256", None)
    if digest != _digest(doc):
        raise MeterStateError(f"{path} fails its checksum: the file was altered or damaged",
                              field="state")
    return doc


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save(path: str | os.PathLike[str], body: dict[str, Any]) -> None:
    """Atomically replace the state file at `path` with `body`."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    data = encode(body)
    tmp = directory / f".{target.name}.{os.getpid()}{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, target)
    _fsync_dir(directory)
    _clean_leftovers(directory, target.name)


def _clean_leftovers(directory: Path, name: str) -> None:
    """Temporary files of writers that were killed (other pids) are garbage."""
    for leftover in directory.glob(f".{name}.*{TMP_SUFFIX}"):
        pid = leftover.name[len(name) + 2 : -len(TMP_SUFFIX)]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise MeterStateError(f"no meter state file at {path} (create one with "
                              "`sts meter new`)", field="state") from None
    except OSError as exc:
        raise MeterStateError(f"cannot read {path}: {exc.strerror}", field="state") from None
    return decode(raw, path)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on `<path>.lock` for a read-modify-write cycle."""
    lock_path = Path(f"{os.fspath(path)}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_state(path: str | os.PathLike[str], tables_file: str | None = None) -> MeterState:
    """The meter state in the file at `path` (STA tables: `tables_file`, else the path the
    state recorded, else $STS_STA_TABLES)."""
    body = load(path)
    try:
        return MeterState.from_json(body, tables_file)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise MeterStateError(f"{path} is malformed ({type(exc).__name__}: {exc})",
                              field="state") from None


def save_state(path: str | os.PathLike[str], state: MeterState) -> None:
    save(path, state.to_json())

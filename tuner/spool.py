"""The tracking spool: MLflow operations that could not be sent, kept in a local JSON-lines file.

A spool file is append-only. Its first line is a header (``{"spool": 1, "uri": ..., "experiment": ...}``);
then come, in any mix and in the order they happened:

- operations (``{"op": "create" | "reopen" | "ensure" | "log" | "text" | "artifact" | "model" | "end",
  ...}``), in the order they must be sent;
- binds (``{"bind": UID, "run_id": ..., "experiment_id": ...}``): a run our operations name by UID exists
  in MLflow under that id;
- marks (``{"mark": N}``): the first N operations have been sent.

Nothing is ever rewritten, so a crash while replaying loses no line, and a replay that stops part-way goes
on from the last mark. A process that owns a spool file holds an exclusive ``flock`` on it, so
``regtuner sync`` skips files a running study is still writing. The URI in the header has no user
name, password or query: credentials come from MLflow's environment variables, never from a file.
Staged files (artifacts, models) that operations point to live in ``<spool dir>/staged/``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere spool files are simply not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "SPOOL_VERSION",
    "SpoolFile",
    "SpoolContents",
    "spool_dir",
    "spool_files",
    "read_spool",
    "clean_uri",
]

SPOOL_VERSION = 1
DEFAULT_DIR = ".regtuner/spool"


def spool_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The spool folder: ``path``, else ``$REGTUNER_SPOOL_DIR``, else ``./.regtuner/spool`` (absolute)."""
    chosen = path or os.environ.get("REGTUNER_SPOOL_DIR") or DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


def clean_uri(uri: str | None) -> str | None:
    """``uri`` without user info and query, which may hold secrets: what a spool file may keep."""
    if not uri:
        return uri
    parts = urllib.parse.urlsplit(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", parts.fragment))


def spool_files(directory: str | os.PathLike[str] | None = None) -> list[Path]:
    """Spool files in ``directory`` (see :func:`spool_dir`), oldest first."""
    folder = spool_dir(directory)
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.jsonl"), key=lambda p: (p.stat().st_mtime, p.name))


@dataclass
class SpoolContents:
    """What a spool file holds: its header, every operation, the binds, and how many were sent."""

    header: dict[str, Any]
    ops: list[dict[str, Any]] = field(default_factory=list)
    binds: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    sent: int = 0

    @property
    def pending(self) -> list[dict[str, Any]]:
        return self.ops[self.sent :]


def read_spool(path: str | os.PathLike[str]) -> SpoolContents:
    """Parse a spool file; a torn last line (the writer died mid-write) is ignored."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    contents = SpoolContents(header={})
    for number, line in enumerate(lines):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                break
            raise ValueError(
                f"spool file {path} line {number + 1} is not JSON; move the file away."
            ) from None
        if number == 0:
            if entry.get("spool") != SPOOL_VERSION:
                raise ValueError(f"{path} is not a regtuner spool file (version {SPOOL_VERSION}).")
            contents.header = entry
        elif "op" in entry:
            contents.ops.append(entry)
        elif "bind" in entry:
            contents.binds[entry["bind"]] = (entry["run_id"], entry.get("experiment_id"))
        elif "mark" in entry:
            contents.sent = max(contents.sent, int(entry["mark"]))
    return contents


class SpoolFile:
    """An open spool file that this process owns (locked) and appends to."""

    def __init__(self, path: Path, handle: Any) -> None:
        self.path = path
        self._handle = handle
        self.ops = 0  # operations in the file
        self.sent = 0  # ...of which this many were sent (the last mark)

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str] | None,
        uri: str | None,
        experiment: str | None,
        binds: Mapping[str, tuple[str, str | None]] = {},  # noqa: B006 - read only
    ) -> SpoolFile:
        """A new spool file in ``directory`` with its header and the binds known so far."""
        folder = spool_dir(directory)
        folder.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = folder / f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 - kept open while the spool lives
        spool = cls(path, handle)
        spool._lock()
        header = {"spool": SPOOL_VERSION, "uri": clean_uri(uri), "experiment": experiment, "pid": os.getpid()}
        spool._write([header])
        spool.bind(binds)
        return spool

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str]) -> SpoolFile | None:
        """Open ``path`` to replay it, or None when another process holds it (a running study)."""
        handle = open(path, "a", encoding="utf-8")  # noqa: SIM115
        spool = cls(Path(path), handle)
        if not spool._lock(block=False):
            handle.close()
            return None
        contents = read_spool(path)
        spool.ops, spool.sent = len(contents.ops), contents.sent
        return spool

    def append(self, ops: Iterable[Mapping[str, Any]]) -> None:
        """Add operations to send later."""
        ops = list(ops)
        self._write(ops)
        self.ops += len(ops)

    def bind(self, binds: Mapping[str, tuple[str, str | None]]) -> None:
        """Record that runs exist: ``{uid: (run_id, experiment_id)}``."""
        self._write([{"bind": uid, "run_id": rid, "experiment_id": eid} for uid, (rid, eid) in binds.items()])

    def mark(self, sent: int) -> None:
        """Record that the first ``sent`` operations have been sent."""
        self.sent = sent
        self._write([{"mark": sent}])

    @property
    def pending(self) -> int:
        return self.ops - self.sent

    def close(self, *, remove: bool = False) -> None:
        """Release the file; ``remove`` deletes it (everything was sent)."""
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()
        if not self._handle.closed:
            self._handle.close()  # closing releases the lock

    def _write(self, entries: Iterable[Mapping[str, Any]]) -> None:
        text = "".join(json.dumps(e, separators=(",", ":"), default=str) + "\n" for e in entries)
        if text:
            self._handle.write(text)
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def _lock(self, block: bool = True) -> bool:
        if fcntl is None:
            return True
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
        except OSError:
            return False
        return True


def stage(source: str | os.PathLike[str], directory: str | os.PathLike[str] | None) -> Path:
    """Copy a file or folder into the spool's staging area, so the caller may delete the original."""
    src = Path(source)
    target = spool_dir(directory) / "staged" / uuid.uuid4().hex / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        shutil.copy2(src, target)
    return target


def staged_dir(directory: str | os.PathLike[str] | None) -> Path:
    """A fresh empty folder in the staging area (for a model to be saved into)."""
    target = spool_dir(directory) / "staged" / uuid.uuid4().hex
    target.mkdir(parents=True)
    return target


def unstage(path: str | os.PathLike[str], directory: str | os.PathLike[str] | None) -> None:
    """Delete a staged copy once it was sent (only paths inside the staging area)."""
    staged = spool_dir(directory) / "staged"
    target = Path(path).resolve()
    if staged in target.parents:
        top = staged / target.relative_to(staged).parts[0]
        shutil.rmtree(top, ignore_errors=True)

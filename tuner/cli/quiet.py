"""Keep TensorFlow's C++ start-up lines off the terminal of ``regtuner`` commands.

``TF_CPP_MIN_LOG_LEVEL`` quiets TensorFlow's own logging, but on CPUs where oneDNN's custom
operations are on (AVX-512, AMX), TensorFlow 2.19+ writes "oneDNN custom operations are on" through
absl before absl's logging is set up, whatever that variable says (tensorflow/tensorflow#100442).
Those lines are written while ``tensorflow`` is imported, so only that import runs with the
process's stderr (file descriptor 2) sent through a filter that drops them; every other line passes.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

__all__ = ["quiet_tensorflow_import", "quiet_import", "filtered_stderr", "NOISE"]

#: pieces of the lines dropped (all written by TensorFlow's C++ code at import)
NOISE: tuple[bytes, ...] = (
    b"oneDNN custom operations are on",
    b"All log messages before absl::InitializeLog() is called are written to STDERR",
    b"cpu_feature_guard",
    b"To enable the following instructions",
)


@contextlib.contextmanager
def filtered_stderr(noise: tuple[bytes, ...] = NOISE) -> Iterator[None]:
    """File descriptor 2 through a pipe for the duration; lines containing a piece of ``noise`` are
    dropped, the rest written to the real stderr when the block ends (the import is seconds)."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no file descriptor 2 (embedded interpreters)
        yield
        return
    read, write = os.pipe()
    kept: list[bytes] = []

    def drain() -> None:
        with os.fdopen(read, "rb") as pipe:
            kept.extend(line for line in pipe if not any(piece in line for piece in noise))

    reader = threading.Thread(target=drain, name="regtuner-stderr-filter", daemon=True)
    reader.start()
    os.dup2(write, 2)
    os.close(write)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last write end closes: the reader sees its end
        os.close(real)
        reader.join(timeout=5)
        for line in kept:
            os.write(2, line)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds one top-level module as the other finders do, and imports it under :func:`filtered_stderr`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname: str, path: object = None, target: ModuleType | None = None):  # noqa: ANN201
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once: the import below and every later one are plain
        spec = importlib.util.find_spec(fullname)  # as the remaining finders see it
        exec_module = getattr(spec.loader, "exec_module", None) if spec is not None else None
        if spec is None or exec_module is None:
            return spec

        def quietly(module: ModuleType) -> None:
            with filtered_stderr():
                exec_module(module)

        spec.loader.exec_module = quietly  # type: ignore[method-assign, union-attr]
        return spec


def quiet_import(name: str) -> None:
    """Import top-level module ``name``, whenever it is first imported in this process, with the
    :data:`NOISE` lines it writes dropped; a no-op when it is imported already."""
    if name not in sys.modules and not any(
        isinstance(f, _QuietFinder) and f.name == name for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietFinder(name))


def quiet_tensorflow_import() -> None:
    """:func:`quiet_import` for ``tensorflow`` (the ``regtuner`` command calls it first thing)."""
    quiet_import("tensorflow")

"""Reading YAML documents the user hands us (job specs, search spaces): plain data, and nothing that explodes.

:func:`safe_load` reads like ``yaml.safe_load`` (PyYAML's ``SafeLoader``: plain data, no Python objects,
a ``!!python/...`` tag is "could not determine a constructor"), with a loader that also refuses, while
it reads, what makes a document dangerous to look at: YAML aliases (``*name``) let a few lines stand for
a structure of billions of values (the "billion laughs"), or for a node that contains itself. Any walk
or ``repr`` of such a document (an error message, say) hangs or exhausts memory. The loader counts the
values each node stands for as its events arrive (an alias counts what its anchor holds, without
copying it), and refuses the document before any Python object is built: too many values, an alias
inside its own anchor, or too deep a nesting.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError

if TYPE_CHECKING:
    import yaml

__all__ = ["MAX_DEPTH", "MAX_VALUES", "guarded_loader", "safe_load"]

#: more nesting than any spec or space needs, and far below Python's recursion limit
MAX_DEPTH = 40
#: values (keys, items, scalars) a document may hold once its aliases are expanded
MAX_VALUES = 20_000

_LOOP = (
    "a YAML alias (*name) refers to a node that contains it, so the document never ends. Write the "
    "values out, or point the alias at a node outside itself."
)
_DEEP = (
    f"the document nests more than {MAX_DEPTH} levels deep; a spec or space is a few levels of mappings "
    "and lists. Flatten it."
)
_LARGE = (
    f"the document expands to more than {MAX_VALUES} values once its YAML aliases (*name) are expanded; "
    "a spec or space needs a few dozen. Remove the aliases that repeat large nodes."
)


@functools.cache
def guarded_loader() -> type[yaml.SafeLoader]:
    """The loader class (made on first use: importing this module does not import PyYAML)."""
    import yaml

    class GuardedLoader(yaml.SafeLoader):
        """PyYAML's pure-Python ``SafeLoader`` that refuses alias bombs, alias loops and deep nesting.

        Every event the composer takes is counted: a scalar is one value, a mapping or sequence one plus
        what its keys and items stand for, an alias what its anchor stands for (so ``*big`` ten times
        counts ``big`` ten times, as a walk of the loaded data would, but costs nothing). An alias met while
        its anchor is still open is a loop. A mapping or sequence more than :data:`MAX_DEPTH` levels below
        the top is too deep. The first of these (in document order) is raised as a :class:`ConfigError`
        once the document is composed, before it is constructed: syntax errors, and a document too deep
        for the parser itself (a RecursionError), still come first, as they did before any check.

        The C loader (``CSafeLoader``) composes in C, out of reach of this count, and words its syntax
        errors differently, so it is not used.
        """

        def __init__(self, stream: str, source: str = "<yaml>") -> None:
            super().__init__(stream)
            self.source = source
            # values counted so far in each open mapping or sequence, outermost first
            self._totals: list[int] = []
            self._anchors: list[str | None] = []  # their anchors
            self._sizes: dict[str, int] = {}  # anchor -> values it stands for (closed nodes only)
            self._fault: str | None = None  # the first refusal, raised once the document is composed

        def get_event(self) -> Any:
            event = super().get_event()
            if self._fault is None:
                self._count(event)
            return event

        def get_single_node(self) -> Any:
            node = super().get_single_node()
            if self._fault is not None:
                raise ConfigError(f"{self.source}: {self._fault}")
            return node

        def _count(self, event: Any) -> None:
            if isinstance(event, yaml.ScalarEvent):
                self._add(1)
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor in self._anchors:
                    self._fault = _LOOP
                else:
                    self._add(self._sizes.get(event.anchor, 1))  # unknown: the composer refuses it
            elif isinstance(event, yaml.CollectionStartEvent):
                if len(self._totals) > MAX_DEPTH:
                    self._fault = _DEEP
                self._totals.append(1)
                self._anchors.append(event.anchor)
            elif isinstance(event, yaml.CollectionEndEvent):
                total, anchor = self._totals.pop(), self._anchors.pop()
                if anchor is not None:
                    self._sizes[anchor] = total
                self._add(total)

        def _add(self, values: int) -> None:
            if self._totals and self._fault is None:
                self._totals[-1] += values
                if self._totals[-1] > MAX_VALUES:
                    self._fault = _LARGE

    return GuardedLoader


def safe_load(text: str, source: str = "<yaml>") -> Any:
    """What ``yaml.safe_load(text)`` returns, read with the loader of :func:`guarded_loader`.

    A refused document is a ConfigError whose message starts with ``source`` (the file's name). A
    malformed tagged value raises ``yaml.YAMLError`` like any syntax error: PyYAML's own constructors let
    other exceptions escape for those (``!!float`` with no value is an IndexError, ``!!int x`` a
    ValueError, ``!!bool x`` a KeyError, ``!!timestamp 2001-02-30`` a ValueError).
    """
    import yaml

    loader = guarded_loader()(text, source)
    try:
        return loader.get_single_data()
    except ConfigError:
        raise
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as exc:
        raise yaml.YAMLError(
            f"a tagged value cannot be read ({type(exc).__name__}: {exc}); remove the tag "
            "(!!int, !!float, !!bool, !!timestamp...) or fix the value after it"
        ) from None
    finally:
        loader.dispose()

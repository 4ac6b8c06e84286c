"""Guards for YAML documents the user hands us (job specs, search spaces), applied right after loading.

``yaml.safe_load`` builds plain data only, but YAML aliases (``*name``) let a few lines stand for a
structure of billions of values (the "billion laughs"), or for a node that contains itself. Any walk or
``repr`` of such a document (an error message, say) hangs or exhausts memory, so both are refused here,
before anything else looks at the document.
"""

from __future__ import annotations

from typing import Any

from tuner.errors import ConfigError

__all__ = ["MAX_DEPTH", "MAX_VALUES", "check_document", "safe_load"]

#: more nesting than any spec or space needs, and far below Python's recursion limit
MAX_DEPTH = 40
#: values (keys, items, scalars) a document may hold once its aliases are expanded
MAX_VALUES = 20_000


def safe_load(text: str) -> Any:
    """``yaml.safe_load(text)``; a malformed tagged value raises ``yaml.YAMLError`` like any syntax error.

    PyYAML's own constructors let other exceptions escape for those (``!!float`` with no value is an
    IndexError, ``!!int x`` a ValueError, ``!!bool x`` a KeyError, ``!!timestamp 2001-02-30`` a ValueError).
    """
    import yaml

    try:
        return yaml.safe_load(text)
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as exc:
        raise yaml.YAMLError(
            f"a tagged value cannot be read ({type(exc).__name__}: {exc}); remove the tag "
            "(!!int, !!float, !!bool, !!timestamp...) or fix the value after it"
        ) from None


def check_document(doc: Any, source: str) -> None:
    """Raise ConfigError when ``doc`` loops through an alias, nests too deep or expands too large."""
    sizes: dict[int, int] = {}
    path: set[int] = set()

    def size(node: Any, depth: int) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:  # shared through an alias: counted each time it is used
            return sizes[key]
        if key in path:
            raise ConfigError(
                f"{source}: a YAML alias (*name) refers to a node that contains it, so the document "
                "never ends. Write the values out, or point the alias at a node outside itself."
            )
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{source}: the document nests more than {MAX_DEPTH} levels deep; a spec or space is a "
                "few levels of mappings and lists. Flatten it."
            )
        path.add(key)
        items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        total = 1
        for item in items:
            total += size(item, depth + 1)
            if total > MAX_VALUES:
                raise ConfigError(
                    f"{source}: the document expands to more than {MAX_VALUES} values once its YAML "
                    "aliases (*name) are expanded; a spec or space needs a few dozen. Remove the "
                    "aliases that repeat large nodes."
                )
        path.discard(key)
        sizes[key] = total
        return total

    size(doc, 0)

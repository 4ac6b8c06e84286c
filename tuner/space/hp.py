"""The read-only hyperparameter view a builder receives as ``hp``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["HyperParameters"]


class HyperParameters(Mapping[str, Any]):
    """This trial's values, with item and attribute access.

    It remembers which names the builder read, so that an adapter injects only the
    knobs the builder did not apply itself.
    """

    __slots__ = ("_values", "_read")

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_read", set())

    def __getitem__(self, name: str) -> Any:
        try:
            value = self._values[name]
        except KeyError:
            known = ", ".join(sorted(self._values)) or "none"
            raise KeyError(
                f"hp has no {name!r}; this trial's names are: {known}. "
                "Declare your own hyperparameters under 'hyperparameters:' in the space."
            ) from None
        self._read.add(name)
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(exc.args[0]) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError("hp is read-only: the tuner sets its values for each trial")

    def __setitem__(self, name: str, value: Any) -> None:
        raise TypeError("hp is read-only: the tuner sets its values for each trial")

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self._values else default

    @property
    def read(self) -> frozenset[str]:
        """Names the builder has read so far."""
        return frozenset(self._read)

    def __repr__(self) -> str:
        return f"HyperParameters({self._values!r})"

    def __reduce__(self):
        return (HyperParameters, (self._values,))

"""The search space: presets, the knob catalogue, YAML documents, and the builder's ``hp``."""

from tuner.space.hp import HyperParameters
from tuner.space.searchspace import PRESETS, SearchSpace, resolve

__all__ = ["HyperParameters", "PRESETS", "SearchSpace", "resolve"]

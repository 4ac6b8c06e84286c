"""The preset spaces: plain YAML files in ``search_spaces/``, shipped inside the wheel."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tuner.errors import ConfigError
from tuner.space.knobs import _did_you_mean

__all__ = ["PRESETS", "preset_dir", "preset_path"]

PRESETS: tuple[str, ...] = ("default", "quick", "small_data", "tabular", "vision", "sequence")


def preset_dir() -> Path:
    """The folder holding the preset YAML files (inside the wheel, or the source checkout)."""
    try:
        packaged = resources.files("tuner") / "search_spaces"
        if isinstance(packaged, Path) and packaged.is_dir():
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parents[2] / "search_spaces"  # beside the tuner package


def preset_path(name: str) -> Path:
    """The YAML file of preset ``name``."""
    if name not in PRESETS:
        raise ConfigError(
            f"unknown preset {name!r}{_did_you_mean(name, PRESETS)}; presets: {', '.join(PRESETS)}"
        )
    path = preset_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"preset file {path} is missing; reinstall regtuner")
    return path

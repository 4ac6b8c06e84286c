"""Data augmentation, framework-neutral: names, magnitudes, and numpy versions for tabular data.

A trial's policy is the ``augmentation`` parameter: names joined by ``+`` (``"flip+cutout"``),
or ``"none"`` (parsed by :func:`tuner.space.searchspace.parse_policy`). Its strength is ``augment_strength``
in [0, 1] (default 0.5). Each
framework adapter implements the names for its tensors with the magnitudes below, so
that one policy means the same thing in Keras, torch and scikit-learn:

=========  ======  ===================================================================
name       inputs  magnitude at strength ``s``
=========  ======  ===================================================================
flip       image   horizontal flip with probability 0.5 (on whenever ``s > 0``)
translate  image   shift by up to ``0.1 * s`` of the height and width
rotate     image   rotate by up to ``0.1 * s`` of a full turn (36 degrees at ``s = 1``)
zoom       image   zoom in or out by up to ``0.2 * s``
contrast   image   contrast factor drawn from ``[1 - 0.3 s, 1 + 0.3 s]``
cutout     image   one square of side ``0.25 * s`` of the shorter side set to 0
noise      all     add N(0, (0.1 s * std)^2), ``std`` of the training X per feature (per channel
                   for images, per feature over rows and steps for sequences)
shift      sequence  roll the time axis by up to ``0.1 * s`` of the steps
mask       sequence  zero ``0.1 * s`` of the time steps, chosen at random
mixup      all     convex mix of row pairs and their targets, weight ~ Beta(a, a), ``a = 0.4 * s``
=========  ======  ===================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tuner.errors import ConfigError
from tuner.records import Injection
from tuner.space.knobs import parse_policy

__all__ = [
    "POLICY_KEY",
    "STRENGTH_KEY",
    "DEFAULT_STRENGTH",
    "AUGMENTATIONS",
    "BY_INPUT",
    "magnitudes",
    "policy_names",
    "split_applicable",
    "trial_policy",
    "plan",
    "feature_std",
    "gaussian_noise",
    "mixup",
]

POLICY_KEY = "augmentation"
STRENGTH_KEY = "augment_strength"
DEFAULT_STRENGTH = 0.5

#: every augmentation name with a one-line description
AUGMENTATIONS: dict[str, str] = {
    "flip": "random horizontal flip",
    "translate": "random translation",
    "rotate": "random rotation",
    "zoom": "random zoom",
    "contrast": "random contrast",
    "cutout": "one random square zeroed",
    "noise": "Gaussian noise scaled to each feature's spread",
    "shift": "random time shift (roll)",
    "mask": "random time steps zeroed",
    "mixup": "mixup of row pairs and their targets",
}

#: the names that apply to each ``TaskInfo.input_kind``
BY_INPUT: dict[str, tuple[str, ...]] = {
    "image": ("flip", "translate", "rotate", "zoom", "contrast", "cutout", "noise", "mixup"),
    "tabular": ("noise", "mixup"),
    "sequence": ("noise", "shift", "mask", "mixup"),
}

# magnitude per unit of strength
NOISE_STD = 0.1
MIXUP_ALPHA = 0.4
TRANSLATE = 0.1
ROTATE = 0.1
ZOOM = 0.2
CONTRAST = 0.3
CUTOUT = 0.25
SHIFT = 0.1
MASK = 0.1


def magnitudes(strength: float) -> dict[str, float]:
    """The magnitude of every augmentation at ``strength`` (see the module table)."""
    s = _strength(strength)
    return {
        "flip": 1.0 if s > 0 else 0.0,
        "translate": TRANSLATE * s,
        "rotate": ROTATE * s,
        "zoom": ZOOM * s,
        "contrast": CONTRAST * s,
        "cutout": CUTOUT * s,
        "noise": NOISE_STD * s,
        "shift": SHIFT * s,
        "mask": MASK * s,
        "mixup": MIXUP_ALPHA * s,
    }


def _strength(strength: Any) -> float:
    try:
        s = float(strength)
    except (TypeError, ValueError):
        s = float("nan")
    if not 0.0 <= s <= 1.0:
        raise ConfigError(f"{STRENGTH_KEY} must be a number in [0, 1], got {strength!r}.")
    return s


def policy_names(policy: str | None) -> tuple[str, ...]:
    """The augmentation names in ``policy`` (``None`` and ``"none"`` give no names)."""
    if policy is None:
        return ()
    if not isinstance(policy, str):
        raise ConfigError(f"{POLICY_KEY} must be a string such as 'flip+mixup' or 'none', got {policy!r}.")
    names = tuple(dict.fromkeys(parse_policy(policy)))
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(
            f"unknown augmentation {unknown[0]!r} in {POLICY_KEY}={policy!r}; "
            f"names are {sorted(AUGMENTATIONS)} joined by '+', or 'none'."
        )
    return names


def split_applicable(names: tuple[str, ...], input_kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(applicable, skipped)``: the names that apply to ``input_kind`` inputs and the others."""
    allowed = BY_INPUT.get(input_kind, ())
    return tuple(n for n in names if n in allowed), tuple(n for n in names if n not in allowed)


def trial_policy(params: Mapping[str, Any]) -> tuple[tuple[str, ...], float]:
    """The augmentation names and strength of one trial's parameters."""
    names = policy_names(params.get(POLICY_KEY))
    strength = params.get(STRENGTH_KEY)
    return names, _strength(DEFAULT_STRENGTH if strength is None else strength)


def plan(
    params: Mapping[str, Any],
    input_kind: str,
    drops: Sequence[tuple[tuple[str, ...], str]],
    where: str,
) -> tuple[tuple[str, ...], float, Injection]:
    """One trial's augmentations for this model: ``(names, strength, record)``.

    ``drops`` lists the names this model cannot take, with why (applied in order); ``where`` says how
    the adapter applies them ("as batch ops in a tf.data pipeline").
    """
    names, strength = trial_policy(params)
    if not names:
        return (), strength, Injection(POLICY_KEY, True, "none: training on the data as given")
    use, skipped = split_applicable(names, input_kind)
    notes = [f"{'+'.join(skipped)} skipped: not for {input_kind} inputs"] if skipped else []
    for unusable, why in drops:
        dropped = [n for n in use if n in unusable]
        if dropped:
            use = tuple(n for n in use if n not in dropped)
            notes.append(f"{'+'.join(dropped)} skipped: {why}")
    if not use:
        return use, strength, Injection(POLICY_KEY, False, "not applied: " + "; ".join(notes))
    words = f"{'+'.join(use)} at strength {strength:g} {where}"
    return use, strength, Injection(POLICY_KEY, True, "; ".join([words, *notes]))


def feature_std(X: np.ndarray) -> np.ndarray:
    """Per-feature standard deviation of ``X`` over rows (constant features get 0)."""
    X = np.asarray(X, dtype=np.float64)
    return X.std(axis=0).astype(np.float32)


def gaussian_noise(
    X: np.ndarray, std: np.ndarray | float, strength: float, rng: np.random.Generator
) -> np.ndarray:
    """``X`` plus Gaussian noise of standard deviation ``0.1 * strength * std`` (``std`` per feature)."""
    X = np.asarray(X)
    sigma = NOISE_STD * _strength(strength) * np.asarray(std, dtype=np.float64)
    out = X + rng.standard_normal(X.shape) * sigma
    return out.astype(X.dtype if np.issubdtype(X.dtype, np.floating) else np.float32, copy=False)


def mixup(
    X: np.ndarray, Y: np.ndarray, strength: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Mix each row with a random partner: ``lam * a + (1 - lam) * b`` on inputs and float targets.

    ``Y`` must be float: one-hot rows for classification, values for regression. ``lam`` is
    drawn per row from Beta(a, a) with ``a = 0.4 * strength``; strength 0 returns copies.
    """
    X = np.asarray(X)
    Y = np.asarray(Y)
    if len(X) != len(Y):
        raise ConfigError(f"mixup needs as many targets as rows, got {len(X)} rows and {len(Y)} targets.")
    if not np.issubdtype(Y.dtype, np.floating):
        raise ConfigError(
            f"mixup mixes targets, so they must be float (one-hot for classes), got dtype {Y.dtype}."
        )
    alpha = MIXUP_ALPHA * _strength(strength)
    if alpha == 0.0 or len(X) < 2:
        return X.copy(), Y.copy()
    lam = rng.beta(alpha, alpha, size=len(X))
    partner = rng.permutation(len(X))
    lx = lam.reshape((-1,) + (1,) * (X.ndim - 1))
    ly = lam.reshape((-1,) + (1,) * (Y.ndim - 1))
    Xf = X.astype(np.float32) if not np.issubdtype(X.dtype, np.floating) else X
    Xm = lx * Xf + (1.0 - lx) * Xf[partner]
    Ym = ly * Y + (1.0 - ly) * Y[partner]
    return Xm.astype(Xf.dtype, copy=False), Ym.astype(Y.dtype, copy=False)

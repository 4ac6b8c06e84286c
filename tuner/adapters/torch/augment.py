"""Augmentation for the torch adapter: batch tensor ops on the training device.

Magnitudes come from :mod:`tuner.adapters.augment`, so a policy means the same as in the
Keras and scikit-learn adapters. Images may be channels-first ``(n, c, h, w)`` (the torch
convention) or channels-last ``(n, h, w, c)``; :func:`channels_first` tells them apart and the
ops run on an NCHW view either way. Translation, rotation and zoom use kornia's
``RandomAffine`` (reflection padding, as Keras); flip, contrast, cutout, noise (per channel for
images), shift, mask and mixup are a few torch ops each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tuner._imports import require
from tuner.adapters import augment

__all__ = ["channels_first", "batch_augmenter"]

BatchFn = Callable[[Any, Any], tuple[Any, Any]]


def channels_first(shape: tuple[int, ...]) -> bool:
    """True when an image row of ``shape`` (3 axes) looks like ``(c, h, w)``: few channels first."""
    return len(shape) == 3 and shape[0] <= 4 < shape[2]


def _spread(X: np.ndarray, input_kind: str) -> np.ndarray:
    """Std of X per feature (tabular), per feature over rows and steps (sequence), per channel (image),
    shaped to broadcast over a batch in X's own layout."""
    X = X.astype(np.float64)
    if input_kind == "sequence":
        return X.std(axis=(0, 1))
    if input_kind == "image":
        if channels_first(X.shape[1:]):
            return X.std(axis=(0, 2, 3)).reshape(-1, 1, 1)
        return X.std(axis=(0, 1, 2))
    return X.std(axis=0)


def _affine(names: tuple[str, ...], mag: dict[str, float]) -> Any | None:
    rotate = 360.0 * mag["rotate"] if "rotate" in names else 0.0
    translate = mag["translate"] if "translate" in names else 0.0
    zoom = mag["zoom"] if "zoom" in names else 0.0
    if not (rotate or translate or zoom):
        return None
    K = require("kornia.augmentation", "torch")
    return K.RandomAffine(
        degrees=rotate,
        translate=(translate, translate) if translate else None,
        scale=(1.0 - zoom, 1.0 + zoom) if zoom else None,
        padding_mode="reflection",
        p=1.0,
    )


def _cutout(torch: Any, x: Any, side: float) -> Any:
    """Zero one square of ``side`` (fraction of the shorter side) per NCHW image, at a random centre."""
    b, _, h, w = x.shape
    half = max(1, int(side * min(h, w))) // 2
    cy = torch.randint(0, h, (b, 1, 1), device=x.device)
    cx = torch.randint(0, w, (b, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device)[None, :, None]
    cols = torch.arange(w, device=x.device)[None, None, :]
    inside = ((rows - cy).abs() <= half) & ((cols - cx).abs() <= half)
    return x * (~inside)[:, None].to(x.dtype)


def _mixup(torch: Any, x: Any, t: Any, alpha: float) -> tuple[Any, Any]:
    b = x.shape[0]
    conc = torch.full((b,), float(alpha), device=x.device)
    lam = torch.distributions.Beta(conc, conc).sample()
    partner = torch.randperm(b, device=x.device)

    def mix(v: Any) -> Any:
        lv = lam.reshape((b,) + (1,) * (v.ndim - 1)).to(v.dtype)
        return lv * v + (1.0 - lv) * v[partner]

    return mix(x), mix(t)


def batch_augmenter(
    X: np.ndarray, names: tuple[str, ...], strength: float, input_kind: str, device: Any
) -> BatchFn:
    """An ``(x, t) -> (x, t)`` function of torch ops applying ``names`` to a batch on ``device``.

    ``X`` (the training inputs) fixes the per-feature noise scale and the contrast range.
    Targets ``t`` must be float (one-hot rows for classes) when ``mixup`` is among ``names``.
    """
    torch = require("torch", "torch")
    mag = augment.magnitudes(strength)
    X = np.asarray(X)
    steps: list[Callable[[Any], Any]] = []

    if input_kind == "image":
        first = channels_first(X.shape[1:])
        affine = _affine(names, mag)
        lo, hi = float(X.min()), float(X.max())

        def images(x: Any) -> Any:
            x = x if first else x.permute(0, 3, 1, 2)
            if "flip" in names and mag["flip"] > 0:
                flip = torch.rand(x.shape[0], device=x.device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            if affine is not None:
                x = affine(x)
            if "contrast" in names and mag["contrast"] > 0:
                c = mag["contrast"]
                factor = torch.empty(x.shape[0], 1, 1, 1, device=x.device).uniform_(1.0 - c, 1.0 + c)
                mean = x.mean(dim=(2, 3), keepdim=True)
                x = ((x - mean) * factor + mean).clamp(lo, hi if hi > lo else lo + 1.0)
            if "cutout" in names and mag["cutout"] > 0:
                x = _cutout(torch, x, mag["cutout"])
            return x if first else x.permute(0, 2, 3, 1).contiguous()

        steps.append(images)
    if "noise" in names and mag["noise"] > 0:
        scale = torch.as_tensor(mag["noise"] * _spread(X, input_kind), dtype=torch.float32, device=device)
        steps.append(lambda x: x + torch.randn_like(x) * scale.to(x.dtype))
    if input_kind == "sequence" and "shift" in names and mag["shift"] > 0:
        max_shift = max(1, round(mag["shift"] * X.shape[1]))

        def shift(x: Any) -> Any:  # a nonzero offset in [-max_shift, max_shift], the same for the batch
            size = int(torch.randint(1, max_shift + 1, ()).item())
            sign = 1 if torch.rand(()).item() < 0.5 else -1
            return torch.roll(x, size * sign, dims=1)

        steps.append(shift)
    if input_kind == "sequence" and "mask" in names and mag["mask"] > 0:
        p = mag["mask"]

        def mask(x: Any) -> Any:
            keep = (torch.rand(x.shape[:2], device=x.device) >= p).to(x.dtype)
            return x * keep.reshape(*x.shape[:2], *([1] * (x.ndim - 2)))

        steps.append(mask)
    alpha = mag["mixup"] if "mixup" in names else 0.0

    def apply(x: Any, t: Any) -> tuple[Any, Any]:
        for step in steps:
            x = step(x)
        if alpha > 0 and x.shape[0] > 1:
            x, t = _mixup(torch, x, t, alpha)
        return x, t

    return apply

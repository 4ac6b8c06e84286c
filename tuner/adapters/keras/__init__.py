"""Keras 3: injection into the user's model, the input pipeline, training epoch by epoch."""

from tuner.adapters.keras.adapter import KerasAdapter

__all__ = ["KerasAdapter"]

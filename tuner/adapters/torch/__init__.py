"""PyTorch: injection into the user's module, devices and loaders, the training loop, augmentation."""

from tuner.adapters.torch.adapter import TorchAdapter

__all__ = ["TorchAdapter"]

"""The torch adapter's training loop, kept apart from the model surgery and the contract."""

from __future__ import annotations

from typing import Any

from tuner.adapters.base import EpochHooks
from tuner.adapters.torch.inject import OptimizerPlan

__all__ = ["run_epochs", "CUDA_LOSS_CHECK_EVERY"]

CUDA_LOSS_CHECK_EVERY = 32  # batches between NaN checks on CUDA (each check waits for the GPU)


def run_epochs(
    torch: Any,
    model: Any,
    opt: Any,
    loss_fn: Any,
    loader: Any,
    hooks: EpochHooks,
    *,
    device: Any,
    augment: Any = None,
    one_hot: int = 0,
    grad_clip: float = 0.0,
    decay: OptimizerPlan | None = None,
) -> None:
    """Train ``model`` for up to ``hooks.max_epochs`` epochs under the tuner's hooks.

    The learning rate comes from ``hooks.learning_rate`` at each epoch start; the batch loss
    goes to ``hooks.batch_loss`` (every batch on the CPU, every few on CUDA, where each read
    waits for the GPU); ``hooks.epoch_end`` returning True stops. Mixed precision on CUDA only:
    bfloat16 where the GPU has it, else float16 with a GradScaler. ``one_hot`` > 0 turns class
    indices into one-hot rows before ``augment`` (mixup needs them); ``decay`` applies the
    decoupled weight decay that SGD/RMSprop lack.
    """
    dev = device
    amp = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp and amp_dtype == torch.float16)
    report = getattr(hooks, "batch_loss", None)
    every = CUDA_LOSS_CHECK_EVERY if amp else 1
    decoupled = decay.decoupled if decay is not None else 0.0
    for epoch in range(hooks.max_epochs):
        lr = float(hooks.learning_rate(epoch))
        for group in opt.param_groups:
            group["lr"] = lr
        model.train()
        running, count = None, 0
        for xb, tb in loader:
            xb, tb = xb.to(dev, non_blocking=True), tb.to(dev, non_blocking=True)
            if one_hot:
                tb = torch.nn.functional.one_hot(tb, one_hot).float()
            if augment is not None:
                xb, tb = augment(xb, tb)
            with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp):
                out = model(xb)
            loss = loss_fn(out.float(), tb)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(opt)
            scaler.update()
            if decoupled:
                with torch.no_grad():
                    torch._foreach_mul_(decay.decay_params, 1.0 - lr * decoupled)
            if report is not None:
                running = loss.detach() if running is None else running + loss.detach()
                count += 1
                if count == every:
                    report(float(running) / count)
                    running, count = None, 0
        if report is not None and count:
            report(float(running) / count)
        if hooks.epoch_end(epoch):
            break
    model.eval()

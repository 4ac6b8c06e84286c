"""The Optuna study: storage, sampler, pruner, and who owns a running study."""

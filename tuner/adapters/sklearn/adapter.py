"""scikit-learn adapter: tune an estimator (or a Pipeline) through its own parameters.

* ``MLPClassifier`` / ``MLPRegressor`` (solver ``adam`` or ``sgd``) train epoch by epoch through
  ``partial_fit``, so per-epoch records, early stopping with best-weight restore and pruning
  work as for the other frameworks. Knobs: ``l2`` -> ``alpha``, ``batch_size``,
  ``learning_rate`` -> ``learning_rate_init`` (the tuner's schedule sets the optimizer's rate at
  each epoch start), ``optimizer`` adam/sgd -> ``solver``. Dropout, label smoothing and gradient
  clipping are recorded as not applicable. The tuner stops early on the validation part, so
  the estimator's own ``early_stopping`` is turned off (``partial_fit`` refuses it). A
  ``random_state`` int (or the trial seed) becomes a RandomState so that each epoch shuffles anew.
* Any other estimator (and an lbfgs MLP): ``l2`` goes to its regularization parameter found by
  name (``alpha``, or ``C`` as an inverse strength; see :mod:`._sklearn_params` for the
  conversions), declared hyperparameters whose names match its parameters are set too
  (``max_depth``, ``l1_ratio``, ...), and it is fit once: one "epoch". An estimator with
  neither is refused before any trial ("nothing to tune").
* A ``Pipeline``: parameters route to its final step (a declared ``"step__param"`` path is used
  as is). For an MLP its preprocessing is fit once on the clean training rows.

Augmentation: Gaussian noise and (for regressors) mixup, on the arrays before the pipeline,
fresh each epoch. Inputs of more than two axes are flattened to rows of features.
Predictions: ``predict_proba`` where the estimator has it, else a sigmoid/softmax of
``decision_function``. The user's object is never changed: each trial trains a ``clone``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from tuner.adapters import augment
from tuner.adapters.base import Adapter, EpochHooks, FitSettings, mro_modules
from tuner.adapters.sklearn import io as skio
from tuner.adapters.sklearn import params as skp
from tuner.errors import ConfigError, ModelError
from tuner.records import Injection
from tuner.space.searchspace import KNOBS

__all__ = ["SklearnAdapter"]

_NOT_FOR_SKLEARN = {
    "dropout": "has no dropout",
    "label_smoothing": "trains on class labels, which cannot be smoothed",
    "gradient_clip": "has no gradient clipping",
}


def _na(knob: str, what: str) -> Injection:
    return Injection(knob, False, f"not applicable: {what}")


class SklearnAdapter(Adapter):
    """Regularize, train and predict with a scikit-learn estimator or Pipeline."""

    framework = "sklearn"
    extra = "core"
    takes_tables = True  # a Pipeline's own preprocessing gets the user's DataFrame as is

    def __init__(self, model: Any, settings: FitSettings) -> None:
        super().__init__(model, settings)
        self.base_lr: float | None = None
        self._prefix = ""
        self._final: Any = None
        self._before: list[Any] = []
        self._epochs = False  # trained epoch by epoch through partial_fit
        self._penalty: skp.Penalty | None = None
        self._l2: float | None = None
        self._batch = 200
        self._aug: tuple[str, ...] = ()
        self._strength = 0.0

    @classmethod
    def accepts(cls, model: object) -> bool:
        return "sklearn" in mro_modules(model) and all(hasattr(model, a) for a in ("fit", "get_params"))

    @property
    def name(self) -> str:
        return type(self._final).__name__

    # ----------------------------------------------------------------- regularize
    def regularize(self, params: Mapping[str, Any], builder_read: frozenset[str]) -> list[Injection]:
        from sklearn.base import clone

        self.model = clone(self.model)  # the builder's object stays as it was
        self._prefix, self._final, self._before = skp.final_step(self.model)
        final = self._final
        self._epochs = skp.is_mlp(final) and final.solver in ("adam", "sgd")
        if "optimizer" in params and skp.is_mlp(final):
            solver = str(params["optimizer"]).lower()
            if solver in ("adam", "sgd") and "optimizer" not in builder_read:
                self._set(solver=solver)
                self._epochs = True
        out: list[Injection] = []
        tuned = False
        for knob, what in _NOT_FOR_SKLEARN.items():
            if knob in params:
                out.append(_na(knob, f"scikit-learn's {self.name} {what}"))
        if "l2" in params:
            injection, applied = self._l2_record(params, builder_read)
            out.append(injection)
            tuned |= applied
        if self._epochs:
            out.extend(self._mlp_knobs(params, builder_read))
            tuned = True
        else:
            for knob in ("learning_rate", "lr_schedule", "batch_size", "optimizer"):
                if knob in params:
                    out.append(_na(knob, f"{self.name} is fit in one step, on all rows at once"))
                    break
        if augment.POLICY_KEY in params:
            out.append(self._augmentation(params, augment.POLICY_KEY in builder_read))
        for name in [n for n in params if n not in KNOBS]:
            injection, applied = self._hyperparameter(name, params[name], builder_read)
            out.append(injection)
            tuned |= applied
        if not tuned and params:  # no params: the untuned baseline, which asks for nothing
            raise ModelError(
                f"nothing to tune: {self.name} has no regularization parameter regtuner knows by name "
                f"({', '.join(skp.REGULARIZATION_NAMES)}) that the space's l2 knob could set, and the space "
                f"declares no hyperparameter of it. Declare its own under 'hyperparameters:' in the space, "
                f"e.g. {{'hyperparameters': {{'max_depth': {{'low': 2, 'high': 12}}}}}}, or read them "
                "from hp in build_model."
            )
        return out

    def _set(self, **values: Any) -> None:
        self.model.set_params(**{f"{self._prefix}{k}": v for k, v in values.items()})

    def _l2_record(self, params: Mapping[str, Any], builder_read: frozenset[str]) -> tuple[Injection, bool]:
        if "l2" in builder_read:
            return Injection("l2", True, "build_model applied it (it read hp.l2); nothing injected"), True
        l2 = float(params["l2"])
        if not l2 >= 0.0:
            raise ConfigError(f"l2 must be >= 0, got {params['l2']!r}.")
        self._penalty = skp.penalty_for(self._final)
        if self._penalty is None:
            return _na("l2", f"{self.name} has no alpha or C parameter"), False
        self._l2 = l2
        pen = self._penalty
        where = f"{self._prefix}{pen.param}"
        if pen.known:
            words = f"{where}: {pen.formula()} with l2={l2:g} (the penalty l2 * ||w||^2 on the mean loss)"
        else:
            words = (
                f"{where}: {pen.formula()} with l2={l2:g}, as is (regtuner does not know how {self.name} "
                f"scales {pen.param}; declare {pen.param!r} as a hyperparameter to search it directly)"
            )
        if pen.scale == "n":
            words += ", set from the training rows when training starts"
        return Injection("l2", True, words), True

    def _mlp_knobs(self, params: Mapping[str, Any], builder_read: frozenset[str]) -> list[Injection]:
        final, out = self._final, []
        lr = params.get("learning_rate")
        self.base_lr = float(lr) if lr is not None else float(final.learning_rate_init)
        self._set(learning_rate_init=self.base_lr)
        if final.solver == "sgd" and final.learning_rate != "constant":
            self._set(learning_rate="constant")  # the tuner's schedule replaces sklearn's
        if "optimizer" in params:
            key = str(params["optimizer"]).lower()
            if key in ("adam", "sgd", "keep") or "optimizer" in builder_read:
                out.append(Injection("optimizer", True, f"solver={final.solver!r}"))
            else:
                out.append(
                    _na(
                        "optimizer", f"{key!r} is not a scikit-learn MLP solver; solver={final.solver!r} kept"
                    )
                )
        if "learning_rate" in params or "lr_schedule" in params:
            schedule = params.get("lr_schedule", "constant")
            out.append(
                Injection(
                    "learning_rate",
                    True,
                    f"learning_rate_init={self.base_lr:g}, set on the {final.solver} optimizer at each epoch "
                    f"start by the {schedule!r} schedule",
                )
            )
        if "batch_size" in params:
            self._batch = int(params["batch_size"])
            self._set(batch_size=self._batch)
            out.append(Injection("batch_size", True, f"batch_size={self._batch} for partial_fit"))
        elif isinstance(final.batch_size, int):
            self._batch = final.batch_size
        own_stopping = bool(final.early_stopping)
        if own_stopping:
            self._set(early_stopping=False)
        if "patience" in params:
            words = (
                f"regtuner stops early on the validation part (patience={params['patience']}) and "
                "restores the best epoch's coefs_"
            )
            if own_stopping:
                words += "; the MLP's own early_stopping is turned off (partial_fit refuses it)"
            out.append(Injection("patience", True, words))
        return out

    def _augmentation(self, params: Mapping[str, Any], by_builder: bool) -> Injection:
        if by_builder:
            return Injection(augment.POLICY_KEY, True, "build_model applied it; nothing injected")
        if self.settings.table is not None:
            return _na(
                augment.POLICY_KEY, "X is a raw table (text, missing values); augmentation needs numbers"
            )
        names, strength = augment.trial_policy(params)
        if not names:
            return Injection(augment.POLICY_KEY, True, "none: training on the data as given")
        use, skipped = augment.split_applicable(names, self.task.input_kind)
        notes = [f"{'+'.join(skipped)} skipped: not for {self.task.input_kind} inputs"] if skipped else []
        other = tuple(n for n in use if n not in ("noise", "mixup"))
        if other:
            notes.append(f"{'+'.join(other)} skipped: scikit-learn models get noise and mixup only")
        use = tuple(n for n in use if n in ("noise", "mixup"))
        if "mixup" in use and self.task.is_classification:
            use = tuple(n for n in use if n != "mixup")
            notes.append(f"mixup skipped: {self.name} trains on class labels, which cannot be mixed")
        self._aug, self._strength = use, strength
        if not use:
            return Injection(augment.POLICY_KEY, False, "not applied: " + "; ".join(notes))
        when = "fresh each epoch" if self._epochs else "once, before the fit"
        where = " before the pipeline" if self._before else ""
        words = f"{'+'.join(use)} at strength {strength:g} on the training arrays{where}, {when}"
        return Injection(augment.POLICY_KEY, True, "; ".join([words, *notes]))

    def _hyperparameter(self, name: str, value: Any, builder_read: frozenset[str]) -> tuple[Injection, bool]:
        if name in builder_read:
            return Injection(name, True, f"build_model read hp.{name}"), True
        path = skp.route(self.model, self._prefix, name)
        if path is None:
            return (
                _na(name, f"{self.name} has no parameter {name!r} and build_model did not read hp.{name}"),
                False,
            )
        try:
            self.model.set_params(**{path: value})
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"hyperparameter {name}={value!r} cannot be set on {self.name}: {exc}") from exc
        return Injection(name, True, f"{path}={value!r} via set_params"), True

    # ----------------------------------------------------------------- dry run
    def check_output(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.base import clone, is_classifier, is_regressor

        est, task, y = self.model, self.task, self._labels(y)
        if task.is_classification and not is_classifier(est):
            kind = "a regressor" if is_regressor(est) else "not a classifier"
            raise ModelError(
                f"build_model returned {type(est).__name__} ({self.name} is {kind}), but y has "
                f"{task.n_classes} classes ({task.kind} task); return a classifier such as MLPClassifier or "
                "LogisticRegression, or pass task='regression' if y is a quantity."
            )
        if not task.is_classification and not is_regressor(est):
            raise ModelError(
                f"build_model returned {type(est).__name__} ({self.name} is not a regressor), but y is a "
                "regression target; return a regressor such as MLPRegressor or Ridge."
            )
        if task.n_outputs > 1 and not skio.multi_output(self._final):
            raise ModelError(
                f"{self.name} predicts one target, but y has {task.n_outputs} columns; wrap it in "
                "sklearn.multioutput.MultiOutputRegressor, or return an estimator that supports several."
            )
        if self.settings.table is not None:
            skio.check_table(self._final, self._before, self._rows(X), y, self.settings.table)
        if self._epochs:  # one partial_fit on a copy catches input problems before any trial
            probe = clone(self._final)
            probe.set_params(batch_size=min(len(X), 8), early_stopping=False)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    Xp = self._rows(X)
                    for step in self._before:
                        Xp = clone(step).fit_transform(Xp, y)
                    probe.partial_fit(Xp, y, **self._classes())
            except Exception as exc:  # noqa: BLE001 - any sklearn error on the batch
                raise ModelError(
                    f"{self.name}.partial_fit failed on a batch of X with rows of shape "
                    f"{tuple(X.shape[1:])}: {type(exc).__name__}: {exc}"
                ) from exc

    def _rows(self, X: np.ndarray) -> Any:
        """What the estimator is fit on: the raw table as a DataFrame, else rows of features."""
        table = self.settings.table
        return table.frame(X) if table is not None else skio.flat(X)

    def _classes(self) -> dict[str, Any]:
        if self.task.is_classification:
            return {"classes": np.asarray(self.task.classes)}
        return {}

    def _labels(self, y: np.ndarray) -> np.ndarray:
        """The user's own labels of encoded class indices: the estimator is fit on them, so that the
        returned model predicts and scores with the labels the user gave ``tune()``."""
        return np.asarray(self.task.classes)[y] if self.task.is_classification else y

    # ----------------------------------------------------------------- training
    def _apply_penalty(self, n: int) -> None:
        if self._penalty is not None and self._l2 is not None:
            batch = max(1, min(self._batch, n))
            self._set(**{self._penalty.param: self._penalty.value(self._l2, n, batch)})

    def _augmented(self, X: np.ndarray, y: np.ndarray, rng: np.random.Generator, std: Any) -> tuple[Any, Any]:
        if "noise" in self._aug:
            X = augment.gaussian_noise(X, std, self._strength, rng)
        if "mixup" in self._aug:
            Y = np.asarray(y, dtype=np.float32)
            X, Y = augment.mixup(X, Y.reshape(len(Y), -1), self._strength, rng)
            y = Y.reshape(np.shape(y))
        return X, y

    def fit(self, X: np.ndarray, y: np.ndarray, params: Mapping[str, Any], hooks: EpochHooks) -> None:
        if self._final is None:
            self.regularize(params, frozenset())
        X, y = self._rows(X), self._labels(y)
        self._apply_penalty(len(X))
        rng = np.random.default_rng(self.settings.seed)
        std = augment.feature_std(X) if "noise" in self._aug else None
        if not self._epochs:
            from sklearn.base import clone

            hooks.learning_rate(0)
            est = clone(self.model)  # a fresh fit, so an earlier get_state() stays intact
            Xa, ya = self._augmented(X, y, rng, std) if self._aug else (X, y)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=skio.convergence_warning())
                skio.call_or_diverged(est.fit, Xa, ya)
            self.model = est
            self._prefix, self._final, self._before = skp.final_step(est)
            hooks.epoch_end(0)
            return
        self._fit_epochs(X, y, hooks, rng, std)

    def _fit_epochs(self, X: np.ndarray, y: np.ndarray, hooks: EpochHooks, rng: Any, std: Any) -> None:
        final = self._final
        state = final.random_state
        try:
            self._epoch_loop(final, X, y, hooks, rng, std)
        finally:  # the trained model shows the user's settings, not the loop's
            final.random_state = state
            final.learning_rate_init = self.base_lr

    def _epoch_loop(
        self, final: Any, X: np.ndarray, y: np.ndarray, hooks: EpochHooks, rng: Any, std: Any
    ) -> None:
        state = final.random_state
        if not isinstance(state, np.random.RandomState):
            seed = self.settings.seed if state is None else int(state)
            final.random_state = np.random.RandomState(seed % 2**32)
        if isinstance(final.batch_size, int) and final.batch_size > len(X):
            final.batch_size = len(X)
        clean = X
        for step in self._before:
            clean = step.fit_transform(clean, y)
        report = getattr(hooks, "batch_loss", None)
        for epoch in range(hooks.max_epochs):
            lr = float(hooks.learning_rate(epoch))
            final.learning_rate_init = lr
            opt = getattr(final, "_optimizer", None)
            if opt is not None:
                opt.learning_rate_init = opt.learning_rate = lr
            Xe, ye = clean, y
            if self._aug:
                Xe, ye = self._augmented(X, y, rng, std)
                for step in self._before:
                    Xe = step.transform(Xe)
            skio.call_or_diverged(final.partial_fit, Xe, ye, **self._classes())
            if report is not None:
                report(float(final.loss_))
            if hooks.epoch_end(epoch):
                break

    # ----------------------------------------------------------------- inference
    def predict(self, X: np.ndarray) -> np.ndarray:
        est, X = self.model, self._rows(X)
        if not self.task.is_classification:
            return np.asarray(est.predict(X), dtype=np.float64).reshape(len(X), -1)
        return skio.probabilities(est, X, self.task.classes)

    def get_state(self) -> Any:
        if not self._epochs:
            return self.model  # fit() trains a fresh clone, so this object is never changed again
        return ([c.copy() for c in self._final.coefs_], [b.copy() for b in self._final.intercepts_])

    def set_state(self, state: Any) -> None:
        if not self._epochs:
            self.model = state
            self._prefix, self._final, self._before = skp.final_step(state)
            return
        coefs, intercepts = state
        self._final.coefs_ = [c.copy() for c in coefs]
        self._final.intercepts_ = [b.copy() for b in intercepts]

    def release(self) -> None:
        self.model = self._final = None
        self._before = []

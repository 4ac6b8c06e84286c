import numpy as np
import pytest

from tuner.adapters import augment
from tuner.errors import ConfigError


def test_magnitudes_scale_with_strength():
    zero, half, full = augment.magnitudes(0.0), augment.magnitudes(0.5), augment.magnitudes(1.0)
    assert all(v == 0.0 for v in zero.values())
    assert set(full) == set(augment.AUGMENTATIONS)
    assert full["noise"] == pytest.approx(0.1)
    assert full["mixup"] == pytest.approx(0.4)
    assert half["translate"] == pytest.approx(0.05)
    assert full["cutout"] == pytest.approx(0.25)
    assert full["zoom"] == pytest.approx(0.2)
    assert full["contrast"] == pytest.approx(0.3)
    assert full["shift"] == full["mask"] == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="augment_strength"):
        augment.magnitudes(1.5)


def test_every_name_applies_to_some_input_kind():
    covered = {n for names in augment.BY_INPUT.values() for n in names}
    assert covered == set(augment.AUGMENTATIONS)


def test_names_agree_with_the_knob_catalogue():
    knobs = pytest.importorskip("tuner.space.knobs")
    assert {k: set(v) for k, v in augment.BY_INPUT.items()} == {
        k: set(v) for k, v in knobs.AUGMENTATIONS_BY_INPUT.items()
    }
    assert set(augment.AUGMENTATIONS) == set(knobs.AUGMENTATION_OPS) - {"none"}
    assert augment.STRENGTH_KEY in knobs.KNOBS and augment.POLICY_KEY in knobs.KNOBS


def test_policy_names():
    assert augment.policy_names("none") == ()
    assert augment.policy_names(None) == ()
    assert augment.policy_names("flip+mixup") == ("flip", "mixup")
    with pytest.raises(ConfigError, match="blur"):
        augment.policy_names("flip+blur")


def test_split_applicable_and_trial_policy():
    assert augment.split_applicable(("noise", "flip", "mixup"), "tabular") == (("noise", "mixup"), ("flip",))
    names, strength = augment.trial_policy({"augmentation": "noise"})
    assert names == ("noise",) and strength == augment.DEFAULT_STRENGTH
    assert augment.trial_policy({"augmentation": "mask", "augment_strength": 0.2}) == (("mask",), 0.2)


def test_gaussian_noise_is_scaled_per_feature():
    rng = np.random.default_rng(0)
    X = np.zeros((20000, 3), dtype=np.float32)
    std = np.array([1.0, 10.0, 0.0], dtype=np.float32)
    out = augment.gaussian_noise(X, std, 1.0, rng)
    assert out.dtype == np.float32 and out.shape == X.shape
    assert out.std(axis=0) == pytest.approx([0.1, 1.0, 0.0], rel=0.05, abs=1e-6)
    assert np.array_equal(augment.gaussian_noise(X, std, 0.0, rng), X)
    assert augment.feature_std(np.array([[0.0, 1.0], [2.0, 1.0]])) == pytest.approx([1.0, 0.0])


def test_mixup_mixes_inputs_and_targets_with_the_same_weight():
    rng = np.random.default_rng(1)
    X = np.arange(200, dtype=np.float32).reshape(100, 2)
    Y = np.eye(2, dtype=np.float32)[np.arange(100) % 2]
    Xm, Ym = augment.mixup(X, Y, 1.0, rng)
    assert Xm.shape == X.shape and Ym.shape == Y.shape
    assert not np.allclose(Xm, X)
    assert np.allclose(Ym.sum(axis=1), 1.0)  # mixed one-hot rows are still distributions
    assert ((Ym > 0) & (Ym < 1)).any()
    # each mixed row lies on the segment between two original rows: column 1 = column 0 + 1
    assert np.allclose(Xm[:, 1] - Xm[:, 0], 1.0, atol=1e-4)


def test_mixup_strength_zero_and_bad_targets():
    rng = np.random.default_rng(2)
    X = np.ones((4, 2))
    Y = np.ones(4)
    Xm, Ym = augment.mixup(X, Y, 0.0, rng)
    assert np.array_equal(Xm, X) and np.array_equal(Ym, Y)
    with pytest.raises(ConfigError, match="float"):
        augment.mixup(X, np.arange(4), 1.0, rng)
    with pytest.raises(ConfigError, match="as many"):
        augment.mixup(X, np.ones(3), 1.0, rng)

"""The search space: presets, YAML validation, sampling with real Optuna studies, task adaptation."""

from __future__ import annotations

import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tuner.errors import ConfigError
from tuner.records import TaskInfo
from tuner.space.searchspace import (
    AUGMENTATIONS_BY_INPUT,
    KNOBS,
    PRESETS,
    SearchSpace,
    parse_policy,
    preset_dir,
    preset_path,
    resolve,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

REGRESSION = TaskInfo("regression")
BINARY_TABULAR = TaskInfo("binary", n_classes=2, classes=(0, 1))
IMAGE = TaskInfo("multiclass", n_classes=10, classes=tuple(range(10)), input_kind="image")
SEQUENCE = TaskInfo("binary", n_classes=2, classes=(0, 1), input_kind="sequence")


def run_study(space: SearchSpace, n_trials: int = 4) -> list[dict]:
    """Sample ``space`` in a real study with its start points enqueued; return each trial's params."""
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    for point in space.start_points:
        study.enqueue_trial(point)
    seen: list[dict] = []

    def objective(trial: optuna.Trial) -> float:
        params = space.sample(trial)
        seen.append(params)
        return float(params.get("dropout", 0.0))

    study.optimize(objective, n_trials=n_trials)
    return seen


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- presets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_loads_samples_and_starts_from_its_textbook_point(name):
    space = resolve(name)
    assert space.name == name and space.description
    text = preset_path(name).read_text()
    assert text.startswith(f"# {name}:"), "each preset opens with a comment saying when to use it"
    assert len(space.start_points) == 1
    seen = run_study(space)
    assert len(seen) == 4
    start = space.start_points[0]
    assert {k: seen[0][k] for k in start} == start  # the first trial is the textbook point
    for params in seen:
        assert set(space.distributions) | set(space.fixed) <= set(params)
        for knob in set(KNOBS) - set(space.knob_names):
            assert (knob in params) == (KNOBS[knob].default is not None)
        for knob in space.knob_names:
            KNOBS[knob].check(params[knob], knob)  # every sampled value is legal for its knob
    assert seen[0]["dropout"] == 0.5 and seen[0]["l2"] == pytest.approx(1e-4)


def test_presets_match_the_documented_ranges():
    quick = resolve("quick")
    dists = quick.distributions
    assert (dists["dropout"].low, dists["dropout"].high) == (0.0, 0.5)
    assert dists["l2"].log and (dists["l2"].low, dists["l2"].high) == (1e-6, 1e-2)
    assert dists["batch_size"].choices == (32, 64)
    assert quick.fixed == {"lr_schedule": "constant", "patience": 3}
    default = resolve("default")
    assert default.distributions["augmentation"].choices == (
        "none",
        "noise",
        "mixup",
        "translate",
        "flip",
        "shift",
    )
    assert default.fixed == {"warmup_fraction": 0.05, "patience": 10}
    assert resolve("small_data").distributions["batch_size"].choices == (8, 16, 32)
    assert resolve("sequence").distributions["gradient_clip"].choices == (0.0, 0.25, 0.5, 1.0)
    for name in PRESETS:  # "none" is always a choice: harmful augmentation must be discoverable
        dist = resolve(name).distributions.get("augmentation")
        assert dist is None or "none" in dist.choices


def test_preset_location_and_unknown_preset():
    assert preset_dir().is_dir()
    assert preset_path("vision") == preset_dir() / "vision.yaml"
    with pytest.raises(ConfigError, match=r"'defualt'.*did you mean 'default'.*\.yaml"):
        resolve("defualt")
    with pytest.raises(ConfigError, match="presets: default, quick"):
        preset_path("nope")


def test_resolve_accepts_every_form_and_rejects_others(tmp_path):
    space = resolve("quick")
    assert resolve(space) is space
    assert resolve(None) == resolve("default")
    copy = write(tmp_path, space.to_yaml(), "mine.yml")
    assert resolve(copy) == space and resolve(str(copy)) == space
    assert resolve(copy).name == "mine"
    assert resolve(space.to_dict()) == space and resolve(space.to_dict()).name == "custom"
    with pytest.raises(ConfigError, match="not int"):
        resolve(3)  # type: ignore[arg-type]


def test_search_space_pickles_for_ray_workers():
    space = resolve("default").for_task(IMAGE)
    clone = pickle.loads(pickle.dumps(space))
    assert clone == space and clone.notes == space.notes
    assert clone.distributions == space.distributions


def test_importing_the_module_stays_light():
    code = "import sys, tuner.space; print(sorted({'optuna', 'yaml', 'mlflow', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- sampling ------------------------------------------------------------------------------------


def test_sample_merges_fixed_values_and_knob_defaults_only():
    space = resolve({"knobs": {"dropout": {"low": 0.1, "high": 0.2}, "patience": 4, "l2_mode": "decoupled"}})
    (params,) = run_study(space, n_trials=1)
    assert 0.1 <= params["dropout"] <= 0.2
    assert params["patience"] == 4 and params["l2_mode"] == "decoupled"
    assert params["batch_size"] == 32 and params["augmentation"] == "none" and params["optimizer"] == "keep"
    for knob in ("l2", "learning_rate"):  # no default: absent means "not applied"
        assert knob not in params
    assert space.fixed == {"l2_mode": "decoupled", "patience": 4}
    assert space.knob_names == ("dropout", "l2_mode", "patience")


def test_user_hyperparameters_are_sampled_beside_the_knobs():
    space = resolve(
        {
            "knobs": {"dropout": [0.0, 0.25]},
            "hyperparameters": {
                "units": {"low": 8, "high": 64, "step": 8},
                "lr_decay": {"low": 1e-3, "high": 1e-1, "log": True},
                "activation": ["relu", "tanh"],
                "depth": {"type": "int", "low": 1, "high": 8, "log": True},
                "bias": True,
                "head": None,
            },
            "start": [{"units": 32, "activation": "tanh", "dropout": 0.25}],
        }
    )
    assert space.hyperparameter_names == ("units", "lr_decay", "activation", "depth", "bias", "head")
    dists = space.distributions
    assert isinstance(dists["units"], optuna.distributions.IntDistribution) and dists["units"].step == 8
    assert isinstance(dists["lr_decay"], optuna.distributions.FloatDistribution) and dists["lr_decay"].log
    assert dists["depth"].log
    seen = run_study(space, n_trials=6)
    assert seen[0]["units"] == 32 and seen[0]["activation"] == "tanh" and seen[0]["dropout"] == 0.25
    for params in seen:
        assert params["units"] in range(8, 65, 8) and 1e-3 <= params["lr_decay"] <= 1e-1
        assert params["activation"] in ("relu", "tanh") and 1 <= params["depth"] <= 8
        assert params["bias"] is True and params["head"] is None


def test_exponent_floats_that_pyyaml_reads_as_strings_are_numbers(tmp_path):
    path = write(
        tmp_path,
        "knobs:\n  l2: {low: 1e-6, high: 1e-2, log: true}\n  learning_rate: 3e-4\n"
        "hyperparameters:\n  decay: [1e-4, 1e-3]\nstart:\n  - {l2: 1e-4}\n",
    )
    space = resolve(path)
    assert space.distributions["l2"].low == 1e-6 and space.fixed["learning_rate"] == 3e-4
    assert space.distributions["decay"].choices == (1e-4, 1e-3)
    assert space.start_points == [{"l2": 1e-4}]


# --- adapting to the task ------------------------------------------------------------------------


def test_for_task_regression_on_tabular_drops_label_smoothing_and_foreign_augmentations():
    space = resolve("default").for_task(REGRESSION)
    assert "label_smoothing" not in space.knob_names
    assert space.distributions["augmentation"].choices == ("none", "noise", "mixup")
    assert any("label_smoothing" in n for n in space.notes)
    assert "augmentation: dropped translate, flip, shift (not for tabular inputs)" in space.notes
    assert "label_smoothing" not in space.start_points[0]
    for params in run_study(space):
        assert "label_smoothing" not in params or params["label_smoothing"] == 0.0  # the default only
        assert params["augmentation"] in ("none", "noise", "mixup")


def test_for_task_keeps_what_applies():
    image = resolve("default").for_task(IMAGE)
    assert image.distributions["augmentation"].choices == ("none", "noise", "mixup", "translate", "flip")
    assert "label_smoothing" in image.distributions
    sequence = resolve("default").for_task(SEQUENCE)
    assert sequence.distributions["augmentation"].choices == ("none", "noise", "mixup", "shift")
    unchanged = resolve("tabular").for_task(BINARY_TABULAR)
    assert unchanged == resolve("tabular") and unchanged.notes == []


def test_for_task_fixes_augmentation_to_none_when_nothing_applies():
    space = resolve(
        {
            "knobs": {"augmentation": ["flip", "cutout+zoom"], "augment_strength": {"low": 0.1, "high": 0.9}},
            "start": [{"augmentation": "flip", "augment_strength": 0.3}],
        }
    ).for_task(BINARY_TABULAR)
    assert space.fixed == {"augmentation": "none"}
    assert "augment_strength" not in space.distributions
    assert space.start_points == []
    assert any("not searched" in n for n in space.notes)
    fixed = resolve({"knobs": {"augmentation": "flip+rotate"}}).for_task(SEQUENCE)
    assert fixed.fixed == {"augmentation": "none"}


def test_for_task_replaces_a_foreign_start_augmentation_by_none():
    space = resolve(
        {"knobs": {"augmentation": ["none", "noise", "flip"]}, "start": [{"augmentation": "flip"}]}
    ).for_task(REGRESSION)
    assert space.distributions["augmentation"].choices == ("none", "noise")
    assert space.start_points == [{"augmentation": "none"}]


def test_augmentation_catalogue_and_policies():
    assert AUGMENTATIONS_BY_INPUT["tabular"] == {"noise", "mixup"}
    assert {"shift", "mask"} <= AUGMENTATIONS_BY_INPUT["sequence"]
    assert "flip" in AUGMENTATIONS_BY_INPUT["image"] and "flip" not in AUGMENTATIONS_BY_INPUT["sequence"]
    assert parse_policy("none") == () == parse_policy("")
    assert parse_policy("Flip + translate") == ("flip", "translate")
    for bad, words in [("none+flip", "cannot be combined"), ("flip+flip", "twice"), ("flipp", "'flip'")]:
        with pytest.raises(ConfigError, match=words):
            parse_policy(bad)


# --- extends -------------------------------------------------------------------------------------


def test_extends_overrides_key_by_key(tmp_path):
    path = write(
        tmp_path,
        "extends: default\n"
        "knobs:\n  dropout: {low: 0.0, high: 0.3}\n  batch_size: 16\n  label_smoothing: null\n"
        "hyperparameters:\n  units: [16, 32]\n",
    )
    space = resolve(path)
    base = resolve("default")
    assert space.name == "space" and space.description == base.description
    assert space.distributions["dropout"].high == 0.3
    assert space.fixed["batch_size"] == 16 and "label_smoothing" not in space.knob_names
    assert space.distributions["l2"] == base.distributions["l2"]  # inherited untouched
    start = space.start_points[0]  # inherited start fitted into the new ranges
    assert start["dropout"] == 0.3 and "batch_size" not in start and "label_smoothing" not in start
    assert any("dropout=0.5 clipped to 0.3" in n for n in space.notes)
    assert run_study(space, 2)[0]["units"] in (16, 32)


def test_extends_own_start_replaces_and_files_chain(tmp_path):
    write(tmp_path, "extends: quick\nknobs:\n  patience: 5\n", "base.yaml")
    child = write(
        tmp_path, "extends: base.yaml\nstart:\n  - {dropout: 0.1}\n  - {dropout: 0.2}\n", "child.yaml"
    )
    space = resolve(child)
    assert space.fixed["patience"] == 5 and space.start_points == [{"dropout": 0.1}, {"dropout": 0.2}]
    assert space.distributions == resolve("quick").distributions


def test_extends_loops_and_unknown_targets_are_errors(tmp_path):
    write(tmp_path, "extends: b.yaml\n", "a.yaml")
    write(tmp_path, "extends: a.yaml\n", "b.yaml")
    with pytest.raises(ConfigError, match="loops back"):
        resolve(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match=r"extends: 'vison'.*did you mean 'vision'"):
        resolve({"extends": "vison"})


# --- validation errors ---------------------------------------------------------------------------

ERRORS = [
    ({"knob": {}}, r"unknown top-level key 'knob'.*did you mean 'knobs'.*allowed keys: description"),
    (
        {"knobs": {"dropuot": 0.5}},
        r"knobs\.dropuot: unknown knob \(did you mean 'dropout'\?\).*'hyperparameters:'",
    ),
    (
        {"knobs": {"dropout": {"lowe": 0, "high": 0.5}}},
        r"knobs\.dropout\.lowe: unknown key.*did you mean 'low'",
    ),
    ({"knobs": {"dropout": {"low": 0.5, "high": 0.1}}}, r"knobs\.dropout: low \(0\.5\) is greater than high"),
    ({"knobs": {"l2": {"low": 0, "high": 0.1, "log": True}}}, r"knobs\.l2\.low: log: true needs low > 0"),
    ({"knobs": {"l2": {"low": 1e-4, "high": 0.1, "log": True, "step": 0.1}}}, r"knobs\.l2\.step: cannot"),
    ({"knobs": {"dropout": {"low": 0, "high": 0.5, "step": 0}}}, r"knobs\.dropout\.step: must be > 0"),
    ({"knobs": {"dropout": {"low": "a", "high": 0.5}}}, r"knobs\.dropout\.low: .*'a'"),
    ({"knobs": {"batch_size": {"low": 8, "high": 64.5}}}, r"knobs\.batch_size\.high: expected an integer"),
    ({"knobs": {"batch_size": {"type": "float", "low": 8, "high": 64}}}, r"knobs\.batch_size\.type: .*int"),
    ({"knobs": {"dropout": {"type": "number", "low": 0, "high": 1}}}, r"knobs\.dropout\.type: must be float"),
    ({"knobs": {"dropout": {"low": 0, "high": 0.5, "log": "yes"}}}, r"knobs\.dropout\.log: must be true"),
    ({"knobs": {"dropout": {"low": 0}}}, r"knobs\.dropout\.high: required"),
    (
        {"knobs": {"dropout": 0.95}},
        r"knobs\.dropout: 0\.95 is not allowed; dropout must be a float in \[0, 0\.9\]",
    ),
    ({"knobs": {"dropout": {"low": 0, "high": 1.0}}}, r"knobs\.dropout\.high: 1\.0 .*\[0, 0\.9\]"),
    ({"knobs": {"learning_rate": 0}}, r"knobs\.learning_rate: 0 .*a float > 0"),
    ({"knobs": {"label_smoothing": [0.0, 0.5]}}, r"knobs\.label_smoothing\[1\]: 0\.5 .*\[0, 0\.5\)"),
    ({"knobs": {"patience": -1}}, r"knobs\.patience: -1 .*an integer >= 0"),
    ({"knobs": {"dropout": "high"}}, r"knobs\.dropout: 'high' is not allowed"),
    (
        {"knobs": {"lr_schedule": ["constant", "cosin"]}},
        r"knobs\.lr_schedule\[1\]: 'cosin'.*did you mean 'cosine'",
    ),
    ({"knobs": {"lr_schedule": {"low": 0, "high": 1}}}, r"knobs\.lr_schedule.*categorical"),
    (
        {"knobs": {"augmentation": ["none", "flip+blur"]}},
        r"knobs\.augmentation\[1\]: .*unknown operation 'blur'",
    ),
    ({"knobs": {"batch_size": []}}, r"knobs\.batch_size: choices must be a non-empty list"),
    ({"knobs": {"batch_size": [32, 32]}}, r"knobs\.batch_size\[1\]: 32 is listed twice"),
    ({"knobs": {"dropout": {"type": "categorical", "low": 0}}}, r"knobs\.dropout\.low: not allowed"),
    ({"knobs": {"dropout": {"low": 0, "high": 0.5, "step": 0.2}}}, r"knobs\.dropout\.step: high - low"),
    ({"knobs": []}, r"knobs: must be a mapping"),
    ({"hyperparameters": {"dropout": [0.1, 0.2]}}, r"hyperparameters\.dropout: 'dropout' is a knob"),
    ({"hyperparameters": {"n-units": 3}}, r"hyperparameters\.n-units: a name must be a Python identifier"),
    (
        {"hyperparameters": {"units": [[1, 2]]}},
        r"hyperparameters\.units\[0\]: \[1, 2\] \(list\) is not a value",
    ),
    ({"description": 3}, r"description: must be a string"),
    (
        {"knobs": {"dropout": {"low": 0, "high": 0.4}}, "start": [{"dropout": 0.5}]},
        r"start\[0\]\.dropout: 0\.5 is outside this space's range \[0\.0, 0\.4\]",
    ),
    (
        {"knobs": {"dropout": [0.1, 0.2]}, "start": [{"dropout": 0.95}]},
        r"start\[0\]\.dropout: 0\.95 .*dropout must be",
    ),
    (
        {"knobs": {"dropout": [0.1, 0.2]}, "start": [{"dropout": 0.3}]},
        r"start\[0\]\.dropout: 0\.3 is not one of",
    ),
    (
        {"knobs": {"patience": 3}, "start": [{"patience": 4}]},
        r"start\[0\]\.patience: 4 differs from the fixed",
    ),
    (
        {"knobs": {"dropout": [0.1]}, "start": [{"dropuot": 0.1}]},
        r"start\[0\]\.dropuot: not a parameter.*'dropout'",
    ),
    ({"knobs": {"dropout": [0.1]}, "start": {"dropout": 0.1}}, r"start: must be a list"),
    ({"extends": 5}, r"extends: 5 is not a preset"),
]


@pytest.mark.parametrize(("doc", "message"), ERRORS, ids=[m.split(":")[0][:40] for _, m in ERRORS])
def test_invalid_spaces_raise_config_error_naming_the_key(doc, message):
    with pytest.raises(ConfigError, match=message):
        resolve(doc)


def test_file_errors_name_the_file_and_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml.*does not exist"):
        resolve(str(tmp_path / "missing.yaml"))
    bad = write(tmp_path, "knobs:\n  dropout: [0.1, 0.2\n  l2: 0.1\n")
    with pytest.raises(ConfigError, match=r"space\.yaml: YAML syntax error at line \d+"):
        resolve(bad)
    with pytest.raises(ConfigError, match="the file is empty"):
        resolve(write(tmp_path, "# nothing\n", "empty.yaml"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        resolve(write(tmp_path, "- dropout\n", "list.yaml"))
    with pytest.raises(ConfigError, match=r"unsafe\.yaml: YAML syntax error"):  # safe_load refuses objects
        resolve(write(tmp_path, "knobs: !!python/object/apply:os.system ['true']\n", "unsafe.yaml"))
    with pytest.raises(ConfigError, match=r"knobs\.dropout\.lowe"):  # messages name the file too
        resolve(write(tmp_path, "knobs:\n  dropout: {lowe: 0, high: 0.5}\n", "typo.yaml"))


# --- fuzz ----------------------------------------------------------------------------------------

_WORDS = st.sampled_from(
    ["description", "extends", "knobs", "hyperparameters", "start", *KNOBS, "type", "low", "high", "log",
     "step", "choices", "float", "int", "categorical", "none", "flip+translate", "noise", "cosine", "units",
     "default", "x.yaml", "auto", "adamw"]
)  # fmt: skip
_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), _WORDS,
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
    st.integers(0, 300), st.floats(0, 1), st.sampled_from(["1e-4", "3e-2", "1.0e-3"]),
)  # fmt: skip
_DOC = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(_WORDS, _SCALAR), inner, max_size=5)
    ),
    max_leaves=20,
)
# Mostly well-shaped documents with wrong bits, so that the fuzz reaches deep validation.
_SPEC = st.one_of(
    _SCALAR,
    st.lists(_SCALAR, min_size=1, max_size=4),
    st.dictionaries(st.sampled_from(["type", "low", "high", "log", "step", "choices", "lowe"]), _SCALAR),
    st.fixed_dictionaries(
        {"low": st.floats(0, 0.5) | st.integers(0, 8), "high": st.floats(0.5, 2) | st.integers(8, 99)},
        optional={"log": st.booleans(), "step": _SCALAR, "type": _WORDS, "choices": _DOC},
    ),
)
_NAMES = st.sampled_from([*KNOBS, "units", "act", "dropuot", "n-1", "4"])
_TOP = st.fixed_dictionaries(
    {},
    optional={
        "description": st.text(max_size=5),
        "extends": st.sampled_from([*PRESETS, "x.yaml", "nope"]),
        "knobs": st.dictionaries(_NAMES, _SPEC, max_size=6),
        "hyperparameters": st.dictionaries(_NAMES, _SPEC, max_size=3),
        "start": st.lists(st.dictionaries(_NAMES, _SCALAR, max_size=4), max_size=3),
    },
)


_FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def load_or_config_error(doc: object) -> None:
    """Resolve ``doc`` from a YAML file and as it is: a space, or ConfigError, nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        for source in (path, doc):
            try:
                space = resolve(source)
            except ConfigError:
                continue
            space.distributions  # noqa: B018 - Optuna must accept what validation accepted
            assert yaml.safe_dump(resolve(space.to_dict()).to_dict()) == yaml.safe_dump(space.to_dict())
            for task in (REGRESSION, IMAGE, SEQUENCE):
                space.for_task(task).distributions  # noqa: B018


@_FUZZ
@given(doc=_TOP)
def test_fuzzed_space_documents_load_or_raise_config_error(doc):
    load_or_config_error(doc)


@_FUZZ
@given(doc=_DOC)
def test_fuzzed_yaml_documents_load_or_raise_config_error(doc):
    load_or_config_error(doc)

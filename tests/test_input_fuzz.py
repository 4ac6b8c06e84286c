"""Fuzzing the YAML entry points: job specs (``tuner.cli.spec.parse_spec``) and search-space files.

Whatever the document, the loaders either accept it or raise our ConfigError, never another exception
and never a hang. Documents come three ways: random nested data dumped to YAML, mostly well-shaped specs
with wrong bits (to reach deep validation), and random YAML text built from YAML's own syntax (anchors,
aliases, tags, flow collections). tests/test_space.py fuzzes space *documents*; the text fuzz is here.
"""

from __future__ import annotations

import inspect
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.error_cases_io import BOMB as _BOMB  # nine lines of YAML, 10**9 values
from tuner.api import tune
from tuner.cli.spec import _BUDGET, _EXECUTOR, _TOP, _TRACKING, parse_spec, resolve_ref
from tuner.errors import ConfigError
from tuner.space.searchspace import resolve

TUNER = Path(__file__).resolve().parent.parent / "tuner"

_WORDS = st.sampled_from(
    [*_TOP, *_BUDGET, *_EXECUTOR, *_TRACKING, "m:f", "os:system", "os.system", "local", "ray", "auto",
     "quick", "x.yaml", "val_loss", "val_accuracy", "accuracy", "binary", "http://mlflow:5000", "mlruns",
     "sqlite:///m.db", "db/studies.db", "1e-3"]
)  # fmt: skip
_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), _WORDS,
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8), st.floats(0, 1), st.integers(0, 9),
)  # fmt: skip
_DATA = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_WORDS | _SCALAR, inner, max_size=5)
    ),
    max_leaves=20,
)
_SPEC = st.fixed_dictionaries(
    {"builder": st.just("m:f") | _SCALAR, "data": st.just("m:g") | _SCALAR},
    optional={
        **{key: _SCALAR | _DATA for key in _TOP if key not in ("builder", "data")},
        "budget": st.dictionaries(st.sampled_from([*_BUDGET, "trials"]), _SCALAR, max_size=4),
        "executor": _SCALAR | st.dictionaries(st.sampled_from([*_EXECUTOR, "adress"]), _DATA, max_size=4),
        "tracking": _SCALAR | st.dictionaries(st.sampled_from([*_TRACKING, "url"]), _SCALAR, max_size=3),
        "data_args": st.dictionaries(_WORDS | _SCALAR, _SCALAR, max_size=3),
    },
)
# YAML syntax as tokens: random text made of these reaches the parser's corners (anchors, aliases,
# merge keys, tags, flow and block collections, documents, odd characters).
_TOKENS = st.sampled_from(
    ["builder: ", "data: ", "m:f", "knobs: ", "dropout: ", "budget: ", "executor: ", "start: ", "\n", "\n  ",
     "- ", ": ", ", ", "[", "]", "{", "}", "&a ", "*a", "&b ", "*b", "<<: ", "? ", "|\n  ", ">\n  ", "'", '"',
     "!!python/object/apply:os.system ['true'] ", "!!python/name:os.system ", "!!binary aGk= ", "!!set ",
     "!!float ", "!!str ", "!ref ", "%YAML 1.1\n", "---\n", "...\n", "#", "\t", "\ufeff", "\x00", "\x85",
     "0.5", "1e-4", ".nan", ".inf", "~", "null", "yes", "2001-12-14", "x", "1"]
)  # fmt: skip
_TEXT = st.lists(_TOKENS, max_size=40).map("".join)
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
_TUNE_ARGS = set(inspect.signature(tune).parameters)


def spec_or_config_error(text: str) -> None:
    """Parse spec ``text``: a well-formed JobSpec, or ConfigError; anything else fails the test."""
    try:
        spec = parse_spec(text, source="fuzz.yaml", base_dir=Path("/nonexistent"))
    except ConfigError:
        return
    assert re.fullmatch(r"\s*[\w.]+\s*:\s*[\w.]+\s*", spec.builder) and ":" in spec.data
    assert set(spec.tune_args) <= _TUNE_ARGS, set(spec.tune_args) - _TUNE_ARGS
    assert spec.executor in ("local", "ray") and set(spec.executor_args) <= _TUNE_ARGS
    assert all(isinstance(k, str) and k.isidentifier() for k in spec.data_args)


def space_or_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            space = resolve(path)
        except ConfigError:
            return
        space.distributions  # noqa: B018 - Optuna accepts what validation accepted


@_FUZZ
@given(doc=_DATA)
def test_random_documents_load_as_specs_or_raise_config_error(doc):
    spec_or_config_error(yaml.safe_dump(doc, allow_unicode=True))


@_FUZZ
@given(doc=_SPEC)
def test_spec_shaped_documents_load_or_raise_config_error(doc):
    spec_or_config_error(yaml.safe_dump(doc, allow_unicode=True))


@_FUZZ
@given(text=_TEXT)
def test_random_yaml_text_loads_as_a_spec_or_raises_config_error(text):
    spec_or_config_error(text)


@_FUZZ
@given(text=_TEXT)
def test_random_yaml_text_loads_as_a_space_or_raises_config_error(text):
    space_or_config_error(text)


# -- what the fuzzers found, and the rules they check ----------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        (f"data_args: {_BOMB}", "expands to more than"),  # repr() of it in a message used to hang
        (f"space: {_BOMB}", "expands to more than"),
        ("data_args: &a {x: *a}", "refers to a node that contains it"),
        ("data_args: {x: " + "[" * 60 + "]" * 60 + "}", "nests more than"),
        ("data_args: " + "[" * 1100 + "]" * 1100, "nests "),  # was a RecursionError
        ("data_args: {1: 2}", "not a keyword argument name"),  # was a TypeError when the job ran
        ("budget: {timeout: .nan}", "budget.timeout must be None (no limit) or seconds > 0"),  # was accepted
        ("budget: {trial_timeout: .inf}", "budget.trial_timeout must be None (no limit) or seconds > 0"),
        ("seed: 2001-12-14", "seed must be an int >= 0"),  # was accepted, refused only when run
        ("tracking: {uri: 5}", "tracking must be a tracking URI string"),
        ("objective: val_los", "'val_los' is not a known name"),
    ],
)
def test_specs_the_fuzzer_broke_are_refused_with_config_error(body, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_spec(f"builder: m:f\ndata: m:g\n{body}\n", source="spec.yaml")


def test_space_files_with_alias_bombs_loops_or_deep_nesting_are_refused(tmp_path):
    for body, message in [
        (f"description: {_BOMB}\n", "expands to more than"),  # hung in the error message's repr()
        ("knobs: &k {dropout: *k}\n", "refers to a node that contains it"),
        ("knobs: {dropout: " + "[" * 1100 + "]" * 1100 + "}\n", "nests (too deeply|more than)"),
    ]:
        (tmp_path / "space.yaml").write_text(body)
        with pytest.raises(ConfigError, match=message):
            resolve(tmp_path / "space.yaml")


@pytest.mark.parametrize(
    "tag", ["!!python/object/apply:os.system ['true']", "!!python/name:os.system", "!!python/module:os",
            "!!python/object:collections.OrderedDict {}"],
)  # fmt: skip
def test_python_tags_are_refused_by_both_loaders(tag, tmp_path):
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        parse_spec(f"builder: {tag}\ndata: m:g\n", source="spec.yaml")
    (tmp_path / "space.yaml").write_text(f"knobs: {tag}\n")
    with pytest.raises(ConfigError, match="could not determine a constructor"):
        resolve(tmp_path / "space.yaml")


@pytest.mark.parametrize(
    "ref",
    ["os.system", "os:system; rm -rf /", "os:system()", "os:system('true')", "__import__('os'):system",
     "os:path:join", ".os:system", "os:", ":system", "os :sys tem", "os:system\nx", "", 5, ["os:system"],
     {"module": "os"}],
)  # fmt: skip
def test_only_module_colon_function_references_are_accepted(ref, tmp_path):
    text = yaml.safe_dump({"builder": ref, "data": "m:g"})
    with pytest.raises(ConfigError, match="not a reference; write it as 'module:function'"):
        parse_spec(text, source="spec.yaml")
    with pytest.raises(ConfigError, match="not a reference"):
        resolve_ref(ref, "builder")  # type: ignore[arg-type]


def test_a_reference_is_imported_and_looked_up_never_called():
    import os.path

    assert resolve_ref("os.path:join", "builder") is os.path.join
    assert resolve_ref(" os.path : join ", "builder") is os.path.join


def test_yaml_is_read_with_safe_load_everywhere():
    unsafe = re.compile(
        r"yaml\.(load|unsafe_load|full_load|load_all|unsafe_load_all|full_load_all)\(|Loader="
    )
    hits = [
        f"{path.relative_to(TUNER.parent)}:{n}: {line.strip()}"
        for path in sorted(TUNER.rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if unsafe.search(line)
    ]
    assert not hits, hits
    readers = {
        p.name for p in TUNER.rglob("*.py") if re.search(r"\bsafe_load\(", p.read_text(encoding="utf-8"))
    }
    assert {"spec.py", "searchspace.py", "yamldoc.py"} <= readers
    assert "(yaml.SafeLoader)" in (TUNER / "space" / "yamldoc.py").read_text(encoding="utf-8")

"""docs/errors.md is true: every entry's error is raised for real, with the message the page shows.

The page is parsed; each entry (``#### E101 · title``) names its exception (or the CLI's exit code 2)
and its message, with ``…`` where text is left out. The trigger registered under the same id in
tests/error_cases*.py runs the real entry point (``tune``, the space and spec loaders, ``regtuner``)
on bad input; the error must come before any training, with every shown piece of the message in it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import tests.error_cases_io  # noqa: F401 - registers the file and CLI cases
import tuner.errors
from tests.error_cases import CASES

DOC = Path(__file__).resolve().parent.parent / "docs" / "errors.md"
_ENTRY = re.compile(r"^#### (E\d{3}) · (.+?)$(.*?)(?=^#{2,4} |\Z)", re.M | re.S)
_ERROR = re.compile(r"^- \*\*Input:\*\* .+ · \*\*Error:\*\* (.+)$", re.M)
_MESSAGE = re.compile(r"^- \*\*Message:\*\* `` (.+) ``$", re.M)
_FIX = re.compile(r"^- \*\*Fix:\*\* \S.*$", re.M)


@dataclass(frozen=True)
class Entry:
    ident: str
    title: str
    error: str  # an exception name from tuner.errors, or "exit 2"
    fragments: tuple[str, ...]  # the message's pieces between the "…"


def _flat(text: str) -> str:
    return " ".join(text.split())


def parse(text: str) -> list[Entry]:
    entries = []
    for ident, title, body in _ENTRY.findall(text):
        error, message = _ERROR.search(body), _MESSAGE.search(body)
        assert error and message and _FIX.search(body), f"{ident}: needs Input/Error, Message and Fix lines"
        if error.group(1).startswith("exit code 2"):
            kind = "exit 2"
        else:
            kind = re.fullmatch(r"`(\w+Error)`", error.group(1).strip()).group(1)  # type: ignore[union-attr]
        pieces = tuple(p for p in (_flat(x) for x in message.group(1).split("…")) if p)
        entries.append(Entry(ident, title.strip(), kind, pieces))
    return entries


ENTRIES = parse(DOC.read_text(encoding="utf-8"))
SKIPS = {
    "E716": (importlib.util.find_spec("torch") is None, "torch is not installed"),
    "E804": (importlib.util.find_spec("pymssql") is not None, "pymssql is installed here"),
}


pytestmark = pytest.mark.usefixtures("numpy_adapter")  # conftest.py


def test_the_catalogue_is_large_unique_and_every_entry_has_a_trigger():
    ids = [e.ident for e in ENTRIES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids), "ids must be unique"
    assert set(ids) == set(CASES), (
        f"entries without a trigger: {sorted(set(ids) - set(CASES))}; "
        f"triggers without an entry: {sorted(set(CASES) - set(ids))}"
    )
    text = DOC.read_text(encoding="utf-8")
    assert text.count("#### E") == len(ids), "an entry heading the parser did not read"
    assert ids == sorted(ids), "entries are listed in id order"


SLOW = {"E332", "E429"}  # YAML nested past the parser's recursion limit: seconds to refuse


@pytest.mark.parametrize(
    "entry",
    [pytest.param(e, marks=pytest.mark.slow) if e.ident in SLOW else e for e in ENTRIES],
    ids=[e.ident for e in ENTRIES],
)
def test_each_entry_is_raised_with_its_message(entry: Entry):
    skip, why = SKIPS.get(entry.ident, (False, ""))
    if entry.ident == "E716":
        import torch

        skip, why = skip or torch.cuda.is_available(), why or "a CUDA GPU is present"
    if skip:
        pytest.skip(why)
    trigger = CASES[entry.ident]
    if entry.error == "exit 2":
        code, printed = trigger()
        assert code == 2, printed
        message = printed
    else:
        expected = getattr(tuner.errors, entry.error)
        with pytest.raises(tuner.errors.TunerError) as caught:
            trigger()
        assert isinstance(caught.value, expected), f"{entry.ident}: got {type(caught.value).__name__}"
        assert isinstance(caught.value, ValueError)  # input errors; the CLI exits 2 on them
        message = str(caught.value)
    for piece in entry.fragments:
        assert piece in _flat(message), f"{entry.ident}: {piece!r} is not in the message:\n{message}"


def test_the_parser_reads_fragments_and_refuses_a_malformed_entry():
    good = (
        "#### E001 · t\n- **Input:** `x` · **Error:** `DataError`\n- **Message:** `` a … b ``\n- **Fix:** f\n"
    )
    assert parse(good) == [Entry("E001", "t", "DataError", ("a", "b"))]
    with pytest.raises(AssertionError, match="E002: needs"):
        parse("#### E002 · t\n- **Input:** `x` · **Error:** `DataError`\n- **Fix:** f\n")


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "missing.yaml"], "cannot read the job spec"),
        (["spaces", "defualt"], "did you mean 'default'"),
    ],
)
def test_the_installed_command_exits_2_on_bad_input(argv, needle):
    done = subprocess.run([sys.executable, "-m", "tuner", *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr

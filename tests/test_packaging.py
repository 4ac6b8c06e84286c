"""Packaging and first contact: light import, install hints, presets from a wheel and a checkout."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_py(code, **kw):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, **kw)


def test_import_tuner_loads_no_framework_and_no_mlflow():
    out = run_py(
        "import sys, tuner; from tuner import tune; import tuner.cli.main;"
        "print(sorted(m for m in ('tensorflow','keras','torch','ray','mlflow') if m in sys.modules))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_missing_extra_names_the_pip_command():
    from tuner._imports import require
    from tuner.errors import MissingDependencyError

    with pytest.raises(ImportError, match=r'pip install "regtuner\[torch\]"'):
        require("torch_not_installed_here", "torch")
    assert issubclass(MissingDependencyError, ImportError)


def test_version_matches_distribution_metadata():
    from importlib.metadata import version

    import tuner

    assert version("regtuner") == tuner.__version__


def test_presets_load_from_source_checkout():
    out = run_py(
        "import tuner.space.searchspace as s; print(s.preset_dir()); print(s.resolve('quick').name)",
        cwd=str(ROOT),
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.split()[0]).resolve() == (ROOT / "search_spaces").resolve()


@pytest.mark.slow  # builds and installs a wheel
def test_presets_load_from_an_installed_wheel(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("regtuner-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "tuner/search_spaces/default.yaml" in names
    site = tmp_path / "site"
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert inst.returncode == 0, inst.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import tuner, tuner.space.searchspace as s; print(tuner.__file__); print(s.preset_dir());"
        "print(','.join(n for n in s.PRESETS if s.resolve(n).distributions))"
    )
    out = run_py(code, cwd=str(tmp_path), env=env)
    assert out.returncode == 0, out.stderr
    file_, preset_dir, loaded = out.stdout.split()
    assert file_.startswith(str(site)) and preset_dir.startswith(str(site))
    assert set(loaded.split(",")) == {"default", "small_data", "tabular", "vision", "sequence", "quick"}


def test_cli_spaces_and_exit_codes():
    ok = subprocess.run(
        [sys.executable, "-m", "tuner", "spaces"], capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert "default" in ok.stdout and "quick" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tuner", "spaces", "nonexistent_preset"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "nonexistent_preset" in bad.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "tuner", "demo", "--trials", "x"], capture_output=True, text=True, timeout=120
    )
    assert usage.returncode == 2


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = [line for line in ci.splitlines() if "pytest" in line and not line.startswith("#")][0]
    assert command.strip() in readme

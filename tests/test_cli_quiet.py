"""The regtuner command drops TensorFlow's C++ start-up lines from its stderr, and nothing else."""

import subprocess
import sys
import textwrap

ABSL = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
NOISE = "I0000 00:00:1796464720.242002 25543 port.cc:153] oneDNN custom operations are on. You may see..."


def run(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": f"{tmp_path}:{':'.join(sys.path)}"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)  # fmt: skip


def test_start_up_lines_written_at_the_descriptor_level_are_dropped_and_the_rest_kept(tmp_path):
    done = run(
        f"""
        import os, sys
        from tuner.cli.quiet import filtered_stderr
        with filtered_stderr():
            os.write(2, b"{ABSL}\\n")
            os.write(2, b"{NOISE}\\n")
            os.write(2, b"a real warning\\n")
            print("from python", file=sys.stderr)
        os.write(2, b"after\\n")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == "a real warning\nfrom python\nafter\n"


def test_only_the_named_modules_import_is_filtered(tmp_path):
    (tmp_path / "noisy.py").write_text(
        f"import os\nos.write(2, b'{NOISE}\\n')\nos.write(2, b'kept at import\\n')\nVALUE = 3\n"
    )
    done = run(
        f"""
        import os
        from tuner.cli.quiet import quiet_import
        quiet_import("noisy")
        import noisy
        assert noisy.VALUE == 3
        os.write(2, b"{NOISE}\\n")  # after the import: not filtered
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"kept at import\n{NOISE}\n"

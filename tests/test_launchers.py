"""The checkout's launchers (bin/queuectl, scripts/*.py) on a Python that lacks queuectl's
dependencies: one line saying what to install, exit 1, never a traceback. And they can be
run directly, as their shebangs promise."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAUNCHERS = [REPO / "bin" / "queuectl", *sorted((REPO / "scripts").glob("*.py"))]


@pytest.mark.parametrize("launcher", LAUNCHERS, ids=lambda p: p.name)
def test_without_the_dependencies_a_launcher_says_what_to_install(launcher):
    # -S leaves site-packages out: the standard library alone, as on a fresh machine.
    proc = subprocess.run(
        [sys.executable, "-S", str(launcher), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert (proc.returncode, proc.stdout) == (1, ""), proc
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "typer" in proc.stderr and "make demo" in proc.stderr
    assert "pip install" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("launcher", LAUNCHERS, ids=lambda p: p.name)
def test_every_launcher_is_executable(launcher):
    assert launcher.read_text().startswith("#!/usr/bin/env python3\n")
    assert stat.S_IMODE(launcher.stat().st_mode) & 0o111 == 0o111  # whatever the umask
    listed = subprocess.run(
        ["git", "ls-files", "-s", str(launcher.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert listed.startswith("100755 "), listed

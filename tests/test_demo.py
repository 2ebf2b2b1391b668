"""`make demo` as a newcomer runs it: every step shows what it did, and it ends cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_demo_shows_every_step_and_removes_its_store():
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = re.split(r"\n=== Step \d+: ", proc.stdout)[1:]
    assert len(steps) >= 5, proc.stdout
    for step in steps:
        title, _, body = step.partition("\n")
        commands = re.split(r"^\$ queuectl .*$", body, flags=re.M)[1:]
        assert commands, title
        # Each command printed something: no step runs a command and shows nothing.
        assert all(output.strip() for output in commands), (title, body)
    assert '"pending": 0' in steps[0], steps[0]
    workdir = re.search(r"\nRemoved (\S+) ", proc.stdout)
    assert workdir and not Path(workdir.group(1)).exists()

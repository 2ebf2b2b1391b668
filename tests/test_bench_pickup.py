"""The benchmark's pickup latency step (`scripts/bench.py --only latency --quick`): pickup is
measured from the start of an enqueue, so no figure can be negative, and the goal is judged
on the in-process figure, where no CLI start-up hides or adds to the worker's part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_pickup_is_measured_from_the_start_of_the_enqueue(tmp_path):
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench.py"), "--only", "latency", "--quick"]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = {f["key"]: f for f in json.loads(out.read_text())["results"]}
    pickups = {k: f for k, f in figures.items() if k.startswith("pickup")}
    assert pickups, figures.keys()
    for key, fig in pickups.items():
        assert "returns" not in fig["name"], fig["name"]
        assert fig["value"] > 0 and all(s > 0 for s in fig["samples"]), (key, fig)
    # The goal is on the worker's part: from an in-process enqueue call to the command.
    assert figures["pickup_library_p50"]["goal"] == "<= 10 ms"
    assert figures["pickup_cli_p50"]["goal"] == ""

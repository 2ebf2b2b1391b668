"""pyproject.toml in the form current setuptools reads without a deprecation warning."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_license_is_an_spdx_string_with_a_setuptools_that_reads_it():
    meta = tomllib.loads(PYPROJECT.read_text())
    assert meta["project"]["license"] == "MIT"  # a TOML table warns on setuptools >= 77
    assert "setuptools>=77" in meta["build-system"]["requires"]

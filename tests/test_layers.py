"""Imports point one way (DESIGN.md): cli -> app -> worker/supervisor -> managers -> store.

Every import of our own modules is read from the source with `ast`, lazy imports inside
functions and TYPE_CHECKING blocks included, so a lower layer that reaches up fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "queuectl"

PURE = {"models", "backoff", "errors", "text"}
MANAGERS = {
    "jobs",
    "workers",
    "config",
    "localproc",
    "schedules",
    "notify",
    "sight",
    "nodeimport",
}
RUNTIME = {"worker", "worker_process", "supervisor", "executor"}
PRESENTATION = {"cli", "render", "dashboard", "web"}


def module_name(path: Path) -> str:
    """`cli.jobs` for src/queuectl/cli/jobs.py, `cli` for its __init__.py."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_imports(path: Path) -> set[str]:
    """The queuectl modules a file imports (as `store.base`, `cli`, ...)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("queuectl."):
                    found.add(alias.name.removeprefix("queuectl."))
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not (node.module or "").startswith("queuectl"):
                    continue
                base = (node.module or "").split(".")[1:]
            else:
                base = package[: len(package) - (node.level - 1)] + (
                    node.module.split(".") if node.module else []
                )
            if node.module is None or (node.level == 0 and node.module == "queuectl"):
                # `from . import render`: each name is a module
                found.update(".".join([*base, alias.name]) for alias in node.names)
            else:
                found.add(".".join(base))
    return {m for m in found if m}


def top(module: str) -> str:
    return module.split(".")[0]


MODULES = {module_name(p): our_imports(p) for p in sorted(SRC.rglob("*.py"))}


def test_the_reader_sees_lazy_and_relative_imports():
    assert "store" in MODULES["app"] and "jobs" in MODULES["app"]
    assert "settings" in MODULES["app"]  # imported inside a property
    assert {"render", "errors", "cli.context"} <= MODULES["cli.dlq"]
    assert "models" in MODULES["store.sqlite"]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if top(n) in PURE))
def test_pure_modules_import_only_each_other(name):
    assert {top(m) for m in MODULES[name]} <= PURE, MODULES[name]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if top(n) == "store"))
def test_stores_import_only_models_errors_and_the_store_package(name):
    assert {top(m) for m in MODULES[name]} <= {"models", "errors", "store"}, MODULES[name]


@pytest.mark.parametrize("name", sorted(MANAGERS))
def test_managers_never_import_the_app_the_runtime_or_the_output(name):
    above = {"app", *PRESENTATION, "worker", "worker_process", "supervisor"}
    assert not {top(m) for m in MODULES[name]} & above, MODULES[name]


@pytest.mark.parametrize("name", sorted(RUNTIME))
def test_the_runtime_never_imports_the_cli_or_presentation_code(name):
    assert not {top(m) for m in MODULES[name]} & PRESENTATION, MODULES[name]


def test_only_the_app_builds_a_config_manager():
    builders = [module_name(p) for p in SRC.rglob("*.py") if "ConfigManager(" in p.read_text()]
    assert builders == ["app"]


# The Store primitives that write a job: only JobManager (and the stores) may call them, so
# every transition is decided in one place (DESIGN.md).
JOB_WRITES = {
    "insert_jobs",
    "claim",
    "finish",
    "count_job_end",
    "renew_lease",
    "update_if",
    "update_many_if",
    "settle",
    "requeue",
    "resolve_open_dependents",
    "progress",
    "purge_batch",
}


def store_calls(path: Path) -> set[str]:
    """The methods a file calls on something named `store` (`store.x(...)`,
    `self.store.x(...)`, `jobs.store.x(...)`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name in ("store", "_store"):
                found.add(node.func.attr)
    return found


def test_the_reader_sees_store_calls():
    assert {"insert_jobs", "settle", "job_states"} <= store_calls(SRC / "jobs.py")


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in sorted(SRC.rglob("*.py"))
        if module_name(p) != "jobs" and top(module_name(p)) != "store"
    ],
    ids=lambda p: module_name(p),
)
def test_only_the_job_manager_writes_jobs_to_the_store(path):
    assert not store_calls(path) & JOB_WRITES

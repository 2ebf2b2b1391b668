"""Choosing and opening a store, tried as a new user would: URLs that cannot work are refused
with a reason, setup problems name the setting to fix, reads create nothing, and no secret of
a URL reaches a message."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from queuectl import store as store_module
from queuectl.cli import main
from queuectl.store import mask_url


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`queuectl ARGV` in-process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str) -> str:
    """The single `Error:` line of stderr (fails if there is anything else)."""
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert "unexpected" not in err and "Traceback" not in err, err
    return err


def files_in(path: Path) -> list[str]:
    """Everything under `path`, relative, sorted."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# -- item: in-memory SQLite cannot hold a queue ---------------------------------------------


@pytest.mark.parametrize("url", [":memory:", "sqlite:///:memory:", "file::memory:"])
@pytest.mark.parametrize(
    "command", [["enqueue", "echo hi"], ["status"], ["worker", "start", "--burst"]]
)
def test_an_in_memory_sqlite_store_is_refused(home, capsys, url, command):
    code, out, err = run(capsys, "--db", url, *command)
    assert (code, out) == (2, "")
    assert "in-memory" in one_error(err) and "file path" in err
    assert files_in(Path.cwd()) == [] and not home.exists()


# -- item: a failing command creates no file ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("file:y.db?mode=ro", "URI"),
        ("sqlite:", "bad SQLite URL"),
        ("sqlite:y.db", "bad SQLite URL"),
        ("sqlite://y.db", "bad SQLite URL"),
        ("sqlite:///y.db?mode=ro", "no options"),
        ("mongodb:host/db", "bad MongoDB URL"),
    ],
)
def test_a_url_that_cannot_work_is_refused_and_leaves_no_file(home, capsys, url, says):
    code, out, err = run(capsys, "--db", url, "status")
    assert (code, out) == (2, "")
    assert says in one_error(err)
    assert files_in(Path.cwd()) == [] and not home.exists()


def test_reads_of_a_store_that_does_not_exist_yet_show_it_empty_and_create_nothing(home, capsys):
    for argv in (["status"], ["list"], ["dlq", "list"], ["stats"], ["config", "list"]):
        code, _out, err = run(capsys, *argv)
        assert (code, err) == (0, ""), (argv, err)
        code, _out, err = run(capsys, "--db", "fresh.db", *argv)
        assert (code, err) == (0, ""), (argv, err)
    code, _out, err = run(capsys, "show", "nope")
    assert code == 1 and "no job with id" in one_error(err)
    assert files_in(Path.cwd()) == [] and not home.exists()

    # The first write creates the store: the home 0700, the file 0600.
    assert run(capsys, "enqueue", "--id", "first", "true")[0] == 0
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "queue.db").stat().st_mode) == 0o600
    code, out, _err = run(capsys, "list", "--json")
    assert code == 0 and '"first"' in out


def test_a_reader_sees_a_store_created_after_it_opened(home, tmp_path):
    from queuectl.app import App
    from queuectl.store import open_store

    path = tmp_path / "later.db"
    reader = open_store(str(path))
    assert reader.count_by_state() == {} and not path.exists()
    writer = open_store(str(path))
    App(store=writer).jobs.enqueue([(None, {"id": "late", "command": "true"})])
    assert reader.count_by_state() == {"pending": 1}
    reader.close()
    writer.close()


# -- item: setup errors name the setting ----------------------------------------------------


def test_a_queuectl_home_that_is_a_file_is_named(home, capsys, monkeypatch, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    for value in (afile, afile / "sub"):
        monkeypatch.setenv("QUEUECTL_HOME", str(value))
        for argv in (["status"], ["enqueue", "true"]):
            code, out, err = run(capsys, *argv)
            assert (code, out) == (1, ""), err
            assert f"QUEUECTL_HOME {value}" in one_error(err) and "not a directory" in err


def test_a_queuectl_home_that_cannot_be_created_is_named(home, capsys, monkeypatch):
    monkeypatch.setenv("QUEUECTL_HOME", "/proc/queuectl-home")
    code, out, err = run(capsys, "enqueue", "true")
    assert (code, out) == (1, "")
    assert "cannot create QUEUECTL_HOME /proc/queuectl-home" in one_error(err)
    assert "set QUEUECTL_HOME" in err


def test_an_empty_home_without_queuectl_home_is_refused(home, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("QUEUECTL_HOME")
    monkeypatch.setenv("HOME", "")
    for argv in (["status"], ["enqueue", "true"]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (1, "")
        assert "HOME is empty" in one_error(err) and "QUEUECTL_HOME" in err
    # An explicit store needs no home at all.
    assert run(capsys, "--db", str(tmp_path / "q.db"), "enqueue", "true")[0] == 0


def test_a_tls_file_that_does_not_exist_is_named(home, capsys):
    url = "mongodb://127.0.0.1:1/db?tls=true&tlsCAFile=/nonexistent/ca.pem"
    code, out, err = run(capsys, "--db", url, "status")
    assert (code, out) == (2, "")
    assert "tlsCAFile" in one_error(err) and "/nonexistent/ca.pem" in err


# -- item: every secret of a URL is masked, and a bad option gets its own message ----------


def test_a_bad_option_beside_a_password_gets_the_drivers_reason(home, capsys):
    url = "mongodb://user:Sekr3tPw@127.0.0.1:1/db?authMechanism=BOGUS"
    code, _out, err = run(capsys, "--db", url, "status")
    assert code == 2
    assert "authmechanism must be in" in one_error(err).lower(), err
    assert "Sekr3tPw" not in err and "percent-encoded" not in err


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        (
            "mongodb://u:pw1@h/db?authMechanism=MONGODB-AWS"
            "&authMechanismProperties=AWS_SESSION_TOKEN:Tok3nValue",
            "Tok3nValue",
        ),
        ("mongodb://h/db?tls=true&tlsCertificateKeyFilePassword=KeyPw9", "KeyPw9"),
        ("mongodb://h/db?password=Plain9", "Plain9"),
        ("mongodb://h/db?sslClientCertificateKeyPassword=Old9", "Old9"),
    ],
)
def test_secrets_in_the_query_are_masked(url, secret):
    masked = mask_url(url)
    assert secret not in masked and "***" in masked
    assert secret in store_module.url_secrets(url)


def test_a_token_in_the_query_never_reaches_an_error(home, capsys):
    url = (
        "mongodb://u:pw1@127.0.0.1:1/db?authMechanism=MONGODB-AWS"
        "&authMechanismProperties=AWS_SESSION_TOKEN:Tok3nValue&serverSelectionTimeoutMS=200"
    )
    code, _out, err = run(capsys, "--db", url, "status")
    assert code in (1, 2)
    assert "Tok3nValue" not in one_error(err) and "pw1" not in err

"""`queuectl web` as a command: its checks before it listens, the missing-extra message,
CLI start-up without the web libraries, and a real server process started and stopped."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from procutil import QUEUECTL, QueueEnv
from test_cli import assert_one_error_line

from queuectl import cli as cli_module

WEB_LIBRARIES = ("starlette", "uvicorn", "jinja2", "prometheus_client")
TOKEN = "s3cret-token-for-tests-0123456789"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli_module.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.com"])
def test_any_address_but_loopback_is_refused_without_a_token(home, capsys, host):
    code, out, err = run(capsys, "web", "--host", host)
    assert (code, out) == (2, "")
    assert_one_error_line(err)
    assert f"refusing to listen on '{host}' without a token" in err
    assert "QUEUECTL_WEB_TOKEN" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "--port must be between 0 and 65535"),
        (["--port", "-1"], "--port must be between 0 and 65535"),
        (["--token", "short"], "--token must be 16-512 printable ASCII characters"),
        (["--token", "has spaces in it, sixteen+"], "--token must be 16-512 printable"),
    ],
)
def test_bad_options_are_exit_2(home, capsys, args, message):
    code, out, err = run(capsys, "web", *args)
    assert (code, out) == (2, "")
    assert_one_error_line(err)
    assert message in err


def test_the_token_may_come_from_the_environment(home, capsys, monkeypatch):
    monkeypatch.setenv("QUEUECTL_WEB_TOKEN", "short")
    code, _, err = run(capsys, "web", "--host", "0.0.0.0")
    assert code == 2 and "--token must be 16-512" in err  # the variable was read


def test_without_the_web_extra_it_says_what_to_install(home, capsys, monkeypatch):
    for name in list(sys.modules):
        if name.startswith("queuectl.web.") and name != "queuectl.web.binding":
            monkeypatch.delitem(sys.modules, name)
    # A None entry makes an import fail; submodules already imported (by earlier tests)
    # would be found without their package, so each one is blocked too.
    for name in [*sys.modules, "starlette", "uvicorn"]:
        if name.split(".")[0] in ("starlette", "uvicorn"):
            monkeypatch.setitem(sys.modules, name, None)
    code, out, err = run(capsys, "web")
    assert (code, out) == (1, "")
    assert_one_error_line(err)
    assert "pip install 'queuectl[web]'" in err


def test_cli_start_up_loads_no_web_library():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import queuectl.cli"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "queuectl.cli" in imported
    loaded = sorted(m for m in imported if m.split(".")[0] in WEB_LIBRARIES)
    assert loaded == []


# -- a real server ------------------------------------------------------------------------
pytest.importorskip("uvicorn", reason="the web extra is not installed")


def start_web(env: QueueEnv, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`queuectl web --port 0 ARGS` in its own session; its URL from its first line."""
    proc = subprocess.Popen(
        [*QUEUECTL, "--db", str(env.db), "web", "--port", "0", *args],
        cwd=env.home,
        env=env.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "queuectl web printed nothing within 30 s"
    line = proc.stdout.readline()
    assert line.startswith("queuectl web: http://127.0.0.1:"), (line, proc.stderr.read())
    return proc, line.split()[2]


def test_a_server_process_serves_the_store_and_stops_on_ctrl_c(tmp_path):
    with QueueEnv(tmp_path) as env:
        env.cli("enqueue", "--id", "j1", "echo hi")
        proc, url = start_web(env)
        try:
            with urllib.request.urlopen(url + "api/status", timeout=10) as response:
                assert json.load(response) == json.loads(env.cli("status", "--json").stdout)
            with urllib.request.urlopen(url, timeout=10) as response:
                assert "Overview" in response.read().decode()
            os.killpg(proc.pid, signal.SIGINT)
            assert proc.wait(15) == 0
            assert "Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)


def test_with_a_token_the_server_asks_for_it(tmp_path):
    with QueueEnv(tmp_path) as env:
        env.cli("status")
        proc, url = start_web(env, "--token", TOKEN)
        try:
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url + "api/status", timeout=10)
            assert refused.value.code == 401
            request = urllib.request.Request(
                url + "api/status", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(15) == 0


def test_a_taken_port_is_one_error_line(tmp_path):
    with QueueEnv(tmp_path) as env, socket.socket() as taken:
        env.cli("status")
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = env.cli("web", "--port", str(port), check=False)
        assert (done.returncode, done.stdout) == (1, "")
        assert_one_error_line(done.stderr)
        assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr


def test_a_bad_store_is_one_error_line_before_listening(tmp_path):
    with QueueEnv(tmp_path) as env:
        missing = Path(tmp_path) / "no-such-dir" / "q.db"
        started = time.monotonic()
        done = env.cli("--db", str(missing), "web", "--port", "0", check=False)
        assert done.returncode == 1 and time.monotonic() - started < 30
        assert_one_error_line(done.stderr)
        assert "does not exist" in done.stderr

"""Store URLs: passwords never reach a message, whatever characters they hold."""

from __future__ import annotations

import pytest

from queuectl.cli import main
from queuectl.store import mask_url, url_password


@pytest.mark.parametrize(
    ("url", "masked", "password"),
    [
        ("mongodb://u:secret@h/db", "mongodb://u:***@h/db", "secret"),
        ("mongodb://u:p/ss@h/db", "mongodb://u:***@h/db", "p/ss"),
        ("mongodb://u:p@ss@h:1/db", "mongodb://u:***@h:1/db", "p@ss"),
        (
            "mongodb+srv://u:p%40ss@c.example/db?w=majority",
            "mongodb+srv://u:***@c.example/db?w=majority",
            "p%40ss",
        ),
        ("mongodb://u:zz?x@h/db", "mongodb://u:***@h/db", "zz?x"),
        ("mongodb://h/db?authSource=a@b", "mongodb://h/db?authSource=a@b", None),
        ("mongodb://user@h/db", "mongodb://user@h/db", None),
        ("/tmp/queue.db", "/tmp/queue.db", None),
    ],
)
def test_mask_url_and_password(url, masked, password):
    assert mask_url(url) == masked
    assert url_password(url) == password


@pytest.mark.parametrize(
    "url",
    [
        "mongodb://user:Kq7/Wv9x@host/db",
        "mongodb://user:Kq7@Wv9x@host/db",
        "mongodb://user:Kq7?Wv9x@host/db",
    ],
)
def test_a_mangled_url_with_a_password_reports_no_fragment_of_it(url, home, capsys):
    assert main(["--db", url, "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Error: bad MongoDB URL") and err.count("\n") == 1
    assert "Kq7" not in err and "Wv9x" not in err, err


def test_an_unknown_url_option_is_bad_input(home, capsys):
    assert main(["--db", "mongodb://127.0.0.1:1/db?retryWritez=true", "status"]) == 2
    assert capsys.readouterr().err.startswith("Error: bad MongoDB URL")

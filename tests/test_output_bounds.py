"""Output kept per job stays bounded (issue 12): at most 64 KiB of each stream (its tail) is
stored, as UTF-8, for the final result and for the live output flushed while a job runs, on
every store, whatever the command writes (text, or bytes that are not UTF-8 at all)."""

from __future__ import annotations

import threading
import time

from queuectl.app import App
from queuectl.executor import TAIL_BYTES, Tail
from queuectl.models import Job

NOTICE = 80  # bytes of "[queuectl: output cut, first N bytes dropped]\n" at most
DEADLINE = 30.0  # seconds any wait in this file may take before the test fails


def stored_size(text: str | None) -> int:
    return len((text or "").encode("utf-8"))


def test_a_tail_of_bytes_that_are_not_utf8_is_still_64_KiB_once_stored():
    tail = Tail()
    garbage = bytes(range(128, 256)) * 2048  # 256 KiB, none of it valid UTF-8
    tail.feed(garbage[:1000])
    tail.feed(garbage[1000:])
    text = tail.text()
    notice, body = text.split("\n", 1)
    assert stored_size(body) <= TAIL_BYTES
    assert stored_size(body) > TAIL_BYTES - 3  # the bound is used, not halved
    dropped = int(notice.split("first ")[1].split(" bytes")[0])
    assert dropped >= len(garbage) - TAIL_BYTES
    # The text kept stands for the last bytes written: one U+FFFD per byte dropped here.
    assert body == "\ufffd" * (len(garbage) - dropped)


def test_text_output_keeps_exactly_its_last_64_KiB():
    tail = Tail()
    line = "é0123456789\n"  # a two-byte character: a cut may fall inside it
    written = (line * 20_000).encode()
    tail.feed(written)
    notice, body = tail.text().split("\n", 1)
    assert stored_size(body) <= TAIL_BYTES
    assert written.endswith(body.lstrip("\ufffd").encode())
    kept = len(body.encode())
    assert notice == f"[queuectl: output cut, first {len(written) - kept} bytes dropped]"


def test_live_and_final_output_stored_are_bounded_on_every_store(store, tmp_path):
    go = tmp_path / "go"
    command = (
        "head -c 300000 /dev/zero | tr '\\0' x; head -c 300000 /dev/urandom >&2; "
        f"while [ ! -e {go} ]; do sleep 0.05; done"
    )
    now = time.time()
    store.insert_jobs(
        [Job(id="chatty", command=command, run_at=now, created_at=now, updated_at=now, seq=1)]
    )
    worker = App(store=store).worker(burst=True, log=lambda _line: None)
    worker.start()
    ran = threading.Thread(target=worker.step, daemon=True)
    ran.start()
    deadline = time.monotonic() + DEADLINE
    live = store.get_job("chatty")
    while not (live.live_stdout and live.live_stderr):
        assert time.monotonic() < deadline, "no live output was stored"
        time.sleep(0.05)
        live = store.get_job("chatty")
    go.touch()
    ran.join(DEADLINE)
    assert not ran.is_alive()
    done = store.get_job("chatty")
    assert done.state == "completed"
    for text in (live.live_stdout, live.live_stderr, done.stdout, done.stderr):
        assert TAIL_BYTES - 3 < stored_size(text) <= TAIL_BYTES + NOTICE
    assert done.live_stdout is None and done.live_stderr is None
    store.update_worker(worker.info.id, {"status": "stopped"})

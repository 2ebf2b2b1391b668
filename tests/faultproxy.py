"""A fault-injecting TCP proxy for the MongoDB wire protocol, for tests.

`FaultProxy(upstream)` listens on a free loopback port and forwards every connection to the
server at `upstream` (the wire lane's nx-27017, or a real MongoDB). Clients use
`proxy.url(db)` instead of the server's URL. It reads whole messages in both directions, and
for OP_MSG requests (what pymongo sends) it knows the command's name and document, so a test
can break one exchange precisely:

- `drop_reply(name, where=...)`: the next request whose command is `name` (and for which
  `where(command)` is true) goes to the server, which applies it; the reply is thrown away and
  that connection cut, as when a network fails after the server did its work. The client
  sees a network error (pymongo: AutoReconnect) for a command that was applied.
- `hold_reply(name, where=..., max_hold=...)`: the same command's reply is held back until the
  test calls `fault.release()` (or `max_hold` seconds pass), then delivered.
- `delay_reply(name, seconds, where=...)`: a hold that releases itself after `seconds`.
- `stall()` / `resume()`: hold all traffic, both ways, on every connection (new ones are
  accepted, and stalled too), as a frozen network does; `stall(seconds)` resumes by itself.
- `cut()`: close every open connection at once (clients reconnect on their next command).
- `refuse()` / `accept()`: an outage: the port stops listening (connections are refused) and
  every open connection is cut, until `accept()` listens on the same port again.

Each `drop_reply`/`hold_reply`/`delay_reply` arms one rule that fires once, on the first
matching request, and returns a `Fault` whose `wait_fired(timeout)` returns the command
document that fired it. `commands` lists the names of every OP_MSG request seen, in order.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import bson

OP_MSG = 2013
HEADER = struct.Struct("<iiii")  # messageLength, requestID, responseTo, opCode
CHECKSUM_PRESENT = 1
Predicate = Callable[[dict[str, Any]], bool]


def parse_op_msg(body: bytes) -> dict[str, Any]:
    """The command of an OP_MSG body (the bytes after the 16-byte header): the kind-0
    section's document, with each kind-1 document sequence added under its identifier
    (pymongo sends `documents`, `updates` and `deletes` that way)."""
    (flags,) = struct.unpack_from("<I", body, 0)
    end = len(body) - (4 if flags & CHECKSUM_PRESENT else 0)
    pos = 4
    command: dict[str, Any] = {}
    sequences: dict[str, list[dict[str, Any]]] = {}
    while pos < end:
        kind = body[pos]
        pos += 1
        (size,) = struct.unpack_from("<i", body, pos)
        if kind == 0:
            command = bson.decode(body[pos : pos + size])
        else:
            name_end = body.index(b"\0", pos + 4)
            identifier = body[pos + 4 : name_end].decode()
            sequences[identifier] = bson.decode_all(body[name_end + 1 : pos + size])
        pos += size
    command.update(sequences)
    return command


def command_name(command: dict[str, Any]) -> str:
    """A command's name: the first key of its document."""
    return next(iter(command), "")


@dataclass
class Fault:
    """One armed rule: what it matches, what it does, and whether it fired."""

    name: str
    where: Predicate | None
    action: str  # "drop" or "hold"
    max_hold: float = 0.0
    fired: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    command: dict[str, Any] | None = None

    def matches(self, command: dict[str, Any]) -> bool:
        """Whether this (not yet fired) rule applies to `command`."""
        if command_name(command).lower() != self.name.lower():
            return False
        return self.where is None or bool(self.where(command))

    def wait_fired(self, timeout: float) -> dict[str, Any]:
        """The command that fired the rule; fails the test if none did within `timeout`."""
        if not self.fired.wait(timeout):
            raise AssertionError(f"no {self.name!r} command matched within {timeout:g}s")
        assert self.command is not None
        return self.command

    def release(self) -> None:
        """Deliver a held reply now."""
        self.released.set()


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Exactly `size` bytes, or None when the peer closed first."""
    chunks = []
    while size:
        try:
            chunk = sock.recv(size)
        except OSError:
            return None
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _recv_message(sock: socket.socket) -> tuple[bytes, int, int, int] | None:
    """One whole wire-protocol message: (bytes, requestID, responseTo, opCode)."""
    header = _recv_exact(sock, HEADER.size)
    if header is None:
        return None
    length, request_id, response_to, opcode = HEADER.unpack(header)
    rest = _recv_exact(sock, length - HEADER.size) if length > HEADER.size else b""
    if rest is None:
        return None
    return header + rest, request_id, response_to, opcode


class _Connection:
    """One client connection and its upstream twin, pumped by two threads."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.pending: dict[int, Fault] = {}  # requestID -> the fault its reply gets
        self.closed = threading.Event()

    def start(self) -> None:
        for target in (self._requests, self._replies):
            threading.Thread(target=target, daemon=True).start()

    def close(self) -> None:
        """Cut both sides at once."""
        self.closed.set()
        for sock in (self.client, self.upstream):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.proxy._forget(self)

    def _send(self, sock: socket.socket, data: bytes) -> bool:
        try:
            sock.sendall(data)
            return True
        except OSError:
            return False

    def _requests(self) -> None:
        while not self.closed.is_set():
            message = _recv_message(self.client)
            if message is None or not self.proxy._flow(self):
                break
            data, request_id, _, opcode = message
            if opcode == OP_MSG:
                fault = self.proxy._match(parse_op_msg(data[HEADER.size :]))
                if fault is not None:
                    self.pending[request_id] = fault
            if not self._send(self.upstream, data):
                break
        self.close()

    def _replies(self) -> None:
        while not self.closed.is_set():
            message = _recv_message(self.upstream)
            if message is None or not self.proxy._flow(self):
                break
            data, _, response_to, _ = message
            fault = self.pending.pop(response_to, None)
            if fault is not None:
                fault.fired.set()
                if fault.action == "drop":
                    break  # the server applied it; the client never hears so
                fault.released.wait(fault.max_hold)
                if self.closed.is_set():
                    break
            if not self._send(self.client, data):
                break
        self.close()


class FaultProxy:
    """A TCP proxy in front of one MongoDB server, with faults a test switches on."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.commands: list[str] = []
        self._faults: list[Fault] = []
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._stalled = 0  # messages waiting for the stall to end
        self._listener: socket.socket | None = None
        self._closed = False
        self._resume_timer: threading.Timer | None = None

    # -- life cycle -----------------------------------------------------------------------
    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Listen on a free loopback port (the same port again after a `refuse()`)."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def close(self) -> None:
        """Stop listening, cut every connection, and let held replies go."""
        self._closed = True
        self.resume()
        self._stop_listening()
        self.cut()
        for fault in self._faults:
            fault.release()

    def url(self, db: str = "") -> str:
        """`mongodb://127.0.0.1:PORT/<db>` through the proxy. directConnection: the driver
        must use this address, not whatever address the server calls itself by."""
        return f"mongodb://{self.host}:{self.port}/{db}?directConnection=true"

    # -- faults ---------------------------------------------------------------------------
    def drop_reply(self, name: str, where: Predicate | None = None) -> Fault:
        """The next `name` command is applied by the server, but its reply is lost and the
        connection cut."""
        return self._arm(Fault(name, where, "drop"))

    def hold_reply(self, name: str, where: Predicate | None = None, max_hold: float = 30) -> Fault:
        """The next `name` command's reply is held until `fault.release()` (or `max_hold`
        seconds)."""
        return self._arm(Fault(name, where, "hold", max_hold))

    def delay_reply(self, name: str, seconds: float, where: Predicate | None = None) -> Fault:
        """The next `name` command's reply arrives `seconds` late."""
        return self._arm(Fault(name, where, "hold", seconds))

    def stall(self, seconds: float | None = None) -> None:
        """Hold all traffic until `resume()` (or until `seconds` passed)."""
        self._flowing.clear()
        if seconds is not None:
            self._resume_timer = threading.Timer(seconds, self.resume)
            self._resume_timer.daemon = True
            self._resume_timer.start()

    def resume(self) -> None:
        """Let traffic flow again after a stall."""
        if self._resume_timer is not None:
            self._resume_timer.cancel()
            self._resume_timer = None
        self._flowing.set()

    @property
    def stalled(self) -> int:
        """How many messages are waiting for a stall to end."""
        return self._stalled

    def cut(self) -> int:
        """Close every open connection; returns how many there were."""
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
        return len(connections)

    def refuse(self) -> None:
        """An outage: stop listening (new connections are refused) and cut the open ones."""
        self._stop_listening()
        self.cut()

    def accept(self) -> None:
        """End an outage: listen on the same port again."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self.start()
                return
            except OSError:  # the old socket may linger a moment
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def connection_count(self) -> int:
        """Open client connections."""
        with self._lock:
            return len(self._connections)

    # -- inside ---------------------------------------------------------------------------
    def _arm(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def _match(self, command: dict[str, Any]) -> Fault | None:
        with self._lock:
            self.commands.append(command_name(command))
            for fault in self._faults:
                if fault.command is None and fault.matches(command):
                    fault.command = command
                    return fault
        return None

    def _flow(self, connection: _Connection) -> bool:
        """Wait while traffic is stalled; False when the connection closed meanwhile."""
        if not self._flowing.is_set():
            with self._lock:
                self._stalled += 1
            try:
                while not self._flowing.wait(0.05):
                    if connection.closed.is_set():
                        return False
            finally:
                with self._lock:
                    self._stalled -= 1
        return not connection.closed.is_set()

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped listening
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, client, upstream)
            with self._lock:
                self._connections.add(connection)
            connection.start()

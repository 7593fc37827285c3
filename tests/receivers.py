"""Real servers on loopback for the tests of alerts: a webhook receiver and an SMTP server.

`WebhookReceiver` is an HTTP server (http.server, in a thread of the test process)
on 127.0.0.1 that records every request and answers as told: 200 by default, any
status (`answer`), slowly (`delay=`), or not at all (`hang`, until `release` or
`stop`). `stop()` closes its port (a refused connection) and `start()` opens the
same port again, so a process given its URL (a scheduler started by the test)
sees a receiver that was down for a while. The `webhook_receiver` fixture of
tests/conftest.py gives one, stopped at teardown.

`python -m tests.receivers --port 0 --log requests.jsonl` runs one as a process of
its own: it prints its URL on the first line, appends each request as a JSON line
to the log (`read_log` reads them back) and answers `--status`.

`SmtpReceiver` is aiosmtpd's SMTP server (requirements-dev.txt) on 127.0.0.1,
keeping the messages it gets.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.message
import email.policy
import json
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from tests.helpers import wait_until

#: A request told to hang is answered nothing after this long at most.
HANG_LIMIT_SECONDS = 30.0
#: What `hang` plans instead of a status.
HANG = "hang"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port of `host` free right now (for servers that cannot take port 0)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    method: str
    path: str
    #: Case-insensitive: `headers["x-scheduler-signature"]`.
    headers: email.message.Message
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass(frozen=True)
class _Answer:
    status: int | str
    body: bytes = b""
    delay: float = 0.0


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 recording requests and answering as the test says."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._plan: list[_Answer] = []
        self._default = _Answer(200)
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Running -----------------------------------------------------------------------

    def start(self) -> WebhookReceiver:
        """Listen (again) on the port; the first start picks a free one when port is 0."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), self._handler_class())
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="test-webhook-receiver:%d" % self.port,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port: requests are refused until `start()` again. Hanging ones end."""
        server, self._server = self._server, None
        if server is None:
            return
        self._released.set()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._released.clear()

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    def url(self, path: str = "/hook") -> str:
        return self.base_url + path

    # Answers -----------------------------------------------------------------------

    def answer(
        self,
        status: int,
        *,
        times: int | None = None,
        body: bytes = b"",
        delay: float = 0.0,
    ) -> None:
        """Answer `status` (after `delay` seconds): the next `times` requests, or all."""
        self._set(_Answer(status, body, delay), times)

    def hang(self, *, times: int | None = None) -> None:
        """Answer nothing: the next `times` requests, or all, until `release()`."""
        self._released.clear()
        self._set(_Answer(HANG), times)

    def release(self) -> None:
        """End the hanging requests (their connections close unanswered); answer 200 again."""
        with self._lock:
            self._plan = [each for each in self._plan if each.status != HANG]
            if self._default.status == HANG:
                self._default = _Answer(200)
        self._released.set()

    def _set(self, answer: _Answer, times: int | None) -> None:
        with self._lock:
            if times is None:
                self._plan = []
                self._default = answer
            else:
                self._plan.extend([answer] * times)

    def _next(self, received: Received) -> _Answer:
        with self._lock:
            self._received.append(received)
            return self._plan.pop(0) if self._plan else self._default

    # What came ---------------------------------------------------------------------

    @property
    def requests(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def clear(self) -> None:
        with self._lock:
            self._received = []

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """The requests once there are at least `count`; fails after `timeout` seconds."""
        wait_until(lambda: len(self.requests) >= count, timeout=timeout)
        return self.requests

    # The server's side -------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                answer = receiver._next(
                    Received(self.command, self.path, self.headers, body)
                )
                if answer.status == HANG:
                    receiver._released.wait(HANG_LIMIT_SECONDS)
                    self.close_connection = True
                    return
                if answer.delay:
                    time.sleep(answer.delay)
                status = int(answer.status)
                text = answer.body or (b"ok" if status < 300 else b"error")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            do_GET = do_POST = do_PUT = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # The test reads `requests`; stderr stays quiet.

        return Handler


# As a process of its own ---------------------------------------------------------------


def read_log(path: Path) -> list[dict[str, Any]]:
    """The requests a `python -m tests.receivers --log` process wrote, in order.

    Each: method, path, headers (a dict), body (text), body_base64 (the bytes).
    """
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--status", type=int, default=200)
    options = parser.parse_args(argv)
    receiver = WebhookReceiver(port=options.port)
    receiver.answer(options.status)
    written = 0
    with receiver:
        print(receiver.base_url, flush=True)
        while True:
            received = receiver.requests
            with options.log.open("a", encoding="utf-8") as log:
                for each in received[written:]:
                    log.write(json.dumps(_as_json(each)) + "\n")
            written = len(received)
            time.sleep(0.02)


def _as_json(received: Received) -> dict[str, Any]:
    return {
        "method": received.method,
        "path": received.path,
        "headers": dict(received.headers.items()),
        "body": received.body.decode("utf-8", "replace"),
        "body_base64": base64.b64encode(received.body).decode("ascii"),
    }


# SMTP ---------------------------------------------------------------------------------


class SmtpReceiver:
    """aiosmtpd's SMTP server on 127.0.0.1:`port`, keeping each message it gets."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._controller: Any = None

    def start(self) -> SmtpReceiver:
        receiver = self

        class Handler:
            async def handle_DATA(
                self, server: Any, session: Any, envelope: Any
            ) -> str:
                message = email.message_from_bytes(
                    envelope.original_content or envelope.content,
                    policy=email.policy.default,
                )
                assert isinstance(message, email.message.EmailMessage)
                receiver.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                receiver.messages.append(message)
                return "250 Message accepted for delivery"

        self._controller = Controller(Handler(), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    _serve(sys.argv[1:])

"""The loopback receivers of tests/receivers.py do what the alert tests rely on."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.receivers import WebhookReceiver, read_log

REPO_ROOT = Path(__file__).resolve().parents[1]


def status_of(url: str, *, timeout: float = 5.0) -> int:
    try:
        with urllib.request.urlopen(url, data=b"{}", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_it_answers_as_told_then_its_default(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.answer(500, times=2)

    assert [status_of(webhook_receiver.url()) for _ in range(3)] == [500, 500, 200]
    assert [each.method for each in webhook_receiver.requests] == ["POST"] * 3


def test_it_is_refused_while_stopped_and_back_on_the_same_port(
    webhook_receiver: WebhookReceiver,
) -> None:
    url = webhook_receiver.url()
    webhook_receiver.stop()

    with pytest.raises(urllib.error.URLError, match="refused"):
        status_of(url)

    webhook_receiver.start()
    assert webhook_receiver.url() == url
    assert status_of(url) == 200


def test_a_hanging_request_times_out_and_release_ends_the_hang(
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.hang(times=1)

    with pytest.raises(TimeoutError):
        status_of(webhook_receiver.url(), timeout=0.3)
    webhook_receiver.release()

    assert status_of(webhook_receiver.url()) == 200


def test_it_runs_as_a_process_of_its_own_logging_each_request(tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.receivers", "--log", str(log), "--status", "202"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")

        assert status_of(base_url + "/hook") == 202

        [request] = wait_until(lambda: read_log(log))
        assert (request["method"], request["path"], request["body"]) == (
            "POST",
            "/hook",
            "{}",
        )
    finally:
        process.terminate()
        process.wait(timeout=10)

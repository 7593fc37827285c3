"""End to end: `runscheduler --metrics-port` serves the process's own figures.

A real scheduler (handler processes, as in production) fires an interval task and
runs a run-now request; the test scrapes its port as Prometheus would and parses
what it serves with prometheus_client's own parser. Without the option nothing
listens; a port taken stops the command before it starts anything.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from scheduler_app.models import SchedulerInstance
from scheduler_app.services import task_request_run
from tests.engine.e2e import make_interval, make_manual, succeeded
from tests.helpers import readme_section
from tests.processes import (
    STARTUP_TIMEOUT,
    SchedulerProcess,
    child_env,
    free_port,
    parent_pid,
    run_to_end,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: The histograms and counters the scheduler serves (their family names).
HISTOGRAMS = (
    "scheduler_fire_lateness_seconds",
    "scheduler_claim_to_start_seconds",
    "scheduler_loop_tick_delay_seconds",
)
COUNTERS = ("scheduler_fires_total", "scheduler_claims_total")


def readme_figures() -> tuple[dict[str, str], list[float]]:
    """The README's table of the figures (name: type) and its list of buckets."""
    section = readme_section("Health and alerts").split(
        "### The scheduler's own figures", 1
    )[1]
    rows = re.findall(r"^\| `(scheduler_\w+)` \| (\w+) \|", section, re.MULTILINE)
    listed = re.search(r"buckets, in seconds: ([\d., \n]+) \(and `\+Inf`\)", section)
    assert rows and listed, "the README's figures are not where this test reads them"
    buckets = [float(each) for each in listed.group(1).replace("\n", " ").split(", ")]
    return dict(rows), buckets


def served_families(port: int) -> dict[str, Any]:
    """The metric families at http://127.0.0.1:port/metrics, by their names."""
    with urllib.request.urlopen(
        "http://127.0.0.1:%d/metrics" % port, timeout=5
    ) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def scrape(port: int) -> dict[str, float] | None:
    """The unlabelled samples at http://127.0.0.1:port/metrics (None: no answer)."""
    try:
        with urllib.request.urlopen(
            "http://127.0.0.1:%d/metrics" % port, timeout=5
        ) as response:
            text = response.read().decode()
    except OSError:
        return None
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.labels:
                samples[sample.name] = sample.value
            elif sample.labels.get("le") == "+Inf":
                samples[sample.name + "{+Inf}"] = sample.value
    return samples


def listening_inodes(port: int | None = None) -> set[str]:
    """The socket inodes of the machine's TCP listeners (on `port`, if given)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A":  # LISTEN
                continue
            if port is None or int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process `pid` holds open."""
    found = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:  # closed meanwhile
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            found.add(match.group(1))
    return found


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the scheduler's handler processes)."""
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and parent_pid(int(entry)) == pid
    ]


def test_runscheduler_serves_its_figures_on_the_metrics_port(
    start_scheduler: Callable[..., SchedulerProcess],
) -> None:
    port = free_port()
    scheduler = start_scheduler(args=["--metrics-port", str(port)])
    scheduler.wait_for_output(
        r"Serving the scheduler's Prometheus figures at "
        r"http://127\.0\.0\.1:%d/metrics" % port
    )
    make_interval("e2e metrics interval")  # fires every second
    request = task_request_run(task=make_manual("e2e metrics run-now"))
    wait_for(lambda: succeeded(request), STARTUP_TIMEOUT, scheduler)

    def figures_counted() -> dict[str, float] | None:
        samples = scrape(port)
        if samples is None:
            return None
        counted = all(
            samples.get(name + "_count", 0) >= 1 for name in HISTOGRAMS
        ) and all(samples.get(name, 0) >= 1 for name in COUNTERS)
        return samples if counted else None

    samples = wait_for(figures_counted, 20, scheduler)

    # What the README lists is what is served: names, types, buckets.
    documented, buckets = readme_figures()
    families = served_families(port)
    served = {
        name.removesuffix("_total") if kind == "counter" else name: kind
        for name, kind in documented.items()
    }
    assert {
        name: family.type
        for name, family in families.items()
        if not name.endswith("_created")
    } == served
    for name, kind in documented.items():
        if kind == "histogram":
            bounds = [
                float(sample.labels["le"])
                for sample in families[name].samples
                if sample.name.endswith("_bucket")
            ]
            assert bounds == [*buckets, float("inf")], name
    # The run-now request and at least one fire were claimed and started.
    assert samples["scheduler_claims_total"] >= 2
    assert samples["scheduler_claim_to_start_seconds_count"] >= 2
    for name in HISTOGRAMS:
        assert samples[name + "_bucket{+Inf}"] == samples[name + "_count"]
        assert samples[name + "_sum"] >= 0
    # The handler processes (SCHEDULER_ISOLATION=process) hold no copy of the
    # listening socket: the port is the scheduler's alone.
    [listener] = listening_inodes(port)
    assert listener in socket_inodes(scheduler.pid)
    handler_processes = children(scheduler.pid)
    assert handler_processes, "the scheduler runs handler processes"
    for child in handler_processes:
        assert listener not in socket_inodes(child), child

    scheduler.stop()
    assert scheduler.popen.returncode == 0, scheduler.report()
    with socket.socket() as again:  # freed with the process
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_without_the_option_the_scheduler_listens_on_no_port(
    start_scheduler: Callable[..., SchedulerProcess],
) -> None:
    scheduler = start_scheduler()
    request = task_request_run(task=make_manual("e2e no metrics"))
    wait_for(lambda: succeeded(request), STARTUP_TIMEOUT, scheduler)

    listeners = listening_inodes()
    for pid in [scheduler.pid, *children(scheduler.pid)]:
        assert socket_inodes(pid) & listeners == set(), pid
    assert "Prometheus" not in scheduler.output()


def test_a_metrics_port_taken_stops_runscheduler_before_it_starts_anything() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The setting, this time: what --metrics-port overrides.
        finished = run_to_end(
            [sys.executable, "manage.py", "runscheduler"],
            child_env(SCHEDULER_METRICS_PORT=str(port)),
            timeout=60,
        )

    assert finished.returncode == 1, finished
    assert (
        "CommandError: Cannot serve the metrics on 127.0.0.1 port %d" % port
        in finished.stderr
    )
    assert "give each its own port, or stop what listens there" in finished.stderr
    assert not SchedulerInstance.objects.exists()  # no instance started

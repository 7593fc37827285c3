"""The metric names the README and the Grafana dashboard use are the ones exported.

One list, scheduler_app.services.metrics.EXPORTED_METRICS (GET /metrics's
ENDPOINT_METRICS and `runscheduler --metrics-port N`'s PROCESS_METRICS), against
the README's "Metrics" section and every expression of docs/grafana-dashboard.json.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler_app.services.metrics import (
    ENDPOINT_METRICS,
    EXPORTED_METRICS,
    PROCESS_METRICS,
    MetricSpec,
)
from tests.helpers import readme_section

DASHBOARD = Path(__file__).resolve().parents[1] / "docs" / "grafana-dashboard.json"
#: A metric's name in PromQL (label values are in quotes, removed first).
NAME = re.compile(r"\bscheduler_[a-z0-9_]+\b")
#: `name{label="x", other=~"y"}`
SELECTOR = re.compile(r"\b(scheduler_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')

#: sample name (a histogram's _bucket, a summary's _sum ...) -> its metric.
BY_SERIES: dict[str, MetricSpec] = {
    series: spec for spec in EXPORTED_METRICS.values() for series in spec.series_names
}


def expressions(node: Any) -> Iterator[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item)


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def test_the_dashboard_uses_only_exported_names_with_their_labels() -> None:
    found = list(expressions(dashboard()))
    assert len(found) > 20

    for expr in found:
        unquoted = QUOTED.sub('""', expr)
        names = NAME.findall(unquoted)
        assert names, expr
        for name in names:
            assert name in BY_SERIES, (name, expr)
        for name, matchers in SELECTOR.findall(unquoted):
            spec = BY_SERIES[name]
            for label in MATCHER.findall(matchers):
                assert label in spec.labels, (label, name, expr)
        known = {"le"} | {label for name in names for label in BY_SERIES[name].labels}
        for grouping in GROUPING.findall(unquoted):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in known, (label, expr)


def test_the_dashboard_shows_every_exported_metric() -> None:
    used = {
        BY_SERIES[name].name
        for expr in expressions(dashboard())
        for name in NAME.findall(QUOTED.sub('""', expr))
    }

    assert used == set(EXPORTED_METRICS)


def test_the_dashboard_has_the_panels_it_promises() -> None:
    titles = [panel["title"] for panel in dashboard()["panels"]]

    for words in (
        "Runs by status",
        "Failures",
        "Last success age",
        "Next fire",
        "Duration",
        "Health states",
        "Pending and running executions",
        "Instances alive",
        "Leader",
        "Fire lateness",
        "Claim to start",
        "Fires and claims",
        "Loop tick delay",
    ):
        assert any(title.startswith(words) for title in titles), words


def readme_table() -> dict[str, tuple[str, tuple[str, ...]]]:
    """name -> (type, labels) of each row of the README's "Metrics" table."""
    rows = {}
    for line in readme_section("Metrics").splitlines():
        if not line.startswith("| `scheduler_"):
            continue
        name, kind, labels = (cell.strip() for cell in line.strip("|").split("|")[:3])
        rows[name.strip("`")] = (
            kind,
            tuple(label.strip(" `") for label in labels.split(",") if label.strip()),
        )
    return rows


def test_the_readme_lists_every_endpoint_metric_with_its_type_and_labels() -> None:
    assert readme_table() == {
        spec.name: (spec.kind, spec.labels) for spec in ENDPOINT_METRICS
    }


def test_the_readme_names_the_scheduler_process_s_metrics_with_their_types() -> None:
    section = readme_section("Metrics")

    for spec in PROCESS_METRICS:
        assert "`%s`" % spec.name in section, spec.name
        assert spec.kind in section, spec.kind


@pytest.mark.parametrize("spec", ENDPOINT_METRICS, ids=lambda spec: spec.name)
def test_each_endpoint_metric_is_a_legal_prometheus_name(spec: MetricSpec) -> None:
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", spec.name)
    assert spec.name.endswith("_total") == (spec.kind == "counter")

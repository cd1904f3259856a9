"""The Grafana dashboard (deploy/grafana/tsql.json) names only metrics a real tsql exports.

A `tsql serve --demo` with a Cyoda source that cannot be reached answers a few
queries, a failing one and a failed login, so every labelled series exists
(outcomes, upstream latency and errors by source); then every metric name in
every dashboard expression must be a sample name of its /metrics (histograms as
their _bucket, _sum and _count series).
"""

import json
import os
import re
import urllib.request

import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import pytest

from conftest import ROOT, Server
from cyoda import free_port

DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "tsql.json")


def expressions(dashboard):
    """Every PromQL expression of the dashboard: panel targets and template queries."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    return found


def metric_names(expr):
    """The tsql metric names an expression reads (label names and values are not matched)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    return set(re.findall(r"\btsql_[a-z0-9_]+\b", without_labels))


def query(server, sql, user="admin", password="admin"):
    with flightsql.connect(server.uri, db_kwargs={"username": user, "password": password}, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    metrics, dead = free_port(), free_port()
    config = tmp_path_factory.mktemp("dashboard") / "tsql.toml"
    config.write_text(
        f'metrics_listen = "127.0.0.1:{metrics}"\ndemo = true\n'
        f'[[source]]\nkind = "cyoda"\ncatalog = "upstream"\nurl = "http://127.0.0.1:{dead}/api"\ntimeout_seconds = 2\n'
    )
    server = Server(["--config", str(config)])
    try:
        assert query(server, "SELECT count(*) FROM cyoda.entities.orders")[0][0] > 0
        with pytest.raises(adbc_driver_manager.Error):
            query(server, "SELECT 1/0")  # a failed query
        with pytest.raises(adbc_driver_manager.Error):
            query(server, "SELECT * FROM upstream.entities.anything")  # an upstream error, by source
        with pytest.raises(adbc_driver_manager.Error):
            query(server, "SELECT 1", password="wrong")  # an auth failure
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10).read().decode()
    finally:
        server.stop()
    from prometheus_client.parser import text_string_to_metric_families

    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def test_every_dashboard_metric_exists(scraped):
    dashboard = json.load(open(DASHBOARD))
    exprs = expressions(dashboard)
    assert len(exprs) >= 15, "the dashboard lost its queries"
    named = set().union(*(metric_names(e) for e in exprs))
    missing = {name: [e for e in exprs if name in metric_names(e)] for name in sorted(named - scraped)}
    assert not missing, f"the dashboard names metrics tsql does not export: {json.dumps(missing, indent=2)}"
    # It covers what operators watch: outcomes, latency, admission, memory, spill, upstream, logins.
    for needed in ["tsql_queries_total", "tsql_query_duration_seconds_bucket", "tsql_queries_running",
                   "tsql_queries_queued", "tsql_memory_pool_reserved_bytes", "tsql_spill_bytes",
                   "tsql_upstream_request_duration_seconds_bucket", "tsql_upstream_errors_total",
                   "tsql_auth_failures_total"]:
        assert needed in named, f"the dashboard does not show {needed}"


def test_dashboard_is_importable():
    dashboard = json.load(open(DASHBOARD))
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "namespace", "pod"}

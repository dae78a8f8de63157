"""grafana/wbsrun-dashboard.json: a Grafana dashboard whose every query reads series that the
exporter serves (checked against a real scrape after a short run)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metrics_kit import Scrape, free_port, scrape, wait_for, wbsrun_with_metrics
from wbsrun.target import TargetProcess

DASHBOARD = Path(__file__).resolve().parents[2] / "grafana" / "wbsrun-dashboard.json"
# PromQL words that look like names: aggregations, functions, keywords.
_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# Not after a digit (`5m`), a dot or a `$` (Grafana variables).
_NAME = re.compile(r"(?<![\w.$])[A-Za-z_:][A-Za-z0-9_:]*")
# Grafana's `label_values(metric, label)`: only its first argument is a series.
_LABEL_VALUES = re.compile(r"label_values\(\s*([^,)]+?)\s*,\s*\w+\s*\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (not its functions, labels or keywords)."""
    text = _LABEL_VALUES.sub(r"\1", expr)
    text = _STRINGS.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for m in _NAME.finditer(text):
        rest = text[m.end() :].lstrip()
        word = m.group()
        if rest.startswith("(") or word.lower() in _WORDS:
            continue
        names.add(word)
    return names


def test_metric_names_finds_the_series_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, action) (rate(wbsrun_a_bucket{instance=~"$i", '
        'action="x{y}"}[$__rate_interval]))) / on (pool) sum(wbsrun_b) + wbsrun_c offset 5m'
    )
    assert metric_names(expr) == {"wbsrun_a_bucket", "wbsrun_b", "wbsrun_c"}
    assert metric_names("label_values(wbsrun_run_info, instance)") == {"wbsrun_run_info"}


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str) and (key == "expr" or (key == "query" and "(" in value)):
                yield value
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def test_dashboard_is_a_grafana_dashboard_on_a_prometheus_datasource_variable() -> None:
    dash = _dashboard()
    assert dash["title"]
    assert dash["uid"]
    assert isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in dash["panels"]}
    for wanted in ("ETA", "Health", "Active users", "Leases held / capacity", "Workbook memory"):
        assert wanted in titles
    for panel in dash["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert target["expr"]


def _served(s: Scrape) -> set[str]:
    """Every series name a scrape offers: sample names, and each family's by its type (a
    family with no sample yet, such as errors before the first error, still counts)."""
    names = {sample.name for fam in s.families.values() for sample in fam.samples}
    for name, fam in s.families.items():
        if fam.type == "counter":
            names.add(name + "_total")
        elif fam.type == "histogram":
            names.update(name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(name)
    return names


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[set[str]]:
    from wbsrun.target import loopback_hosts

    tmp = tmp_path_factory.mktemp("grafana")
    hosts = loopback_hosts(2)
    with TargetProcess.start(hosts=hosts) as target:
        bundle = _bundle(tmp, hosts, target.port)
        port = free_port()
        out = tmp / "result.json"
        args = ("run", str(bundle), "--users", "2", "--duration", "2s", "--json", str(out))
        with wbsrun_with_metrics(*args, port=port, linger="30s") as run:
            wait_for(lambda: out.is_file() or None, 60, "the result file", run)
            yield _served(scrape(f"http://127.0.0.1:{port}/metrics"))


def _bundle(tmp: Path, hosts: list[str], port: int) -> Path:
    import shutil

    source = Path(__file__).resolve().parents[2] / "src" / "wbsrun" / "examples" / "http_tri_phase"
    bundle = tmp / "bundle"
    shutil.copytree(source, bundle)
    lines = ["ip,port", *(f"{h},{port}" for h in hosts)]
    (bundle / "resource.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return bundle


def test_every_series_the_dashboard_queries_is_one_the_exporter_serves(served: set[str]) -> None:
    queried: dict[str, set[str]] = {}
    for expr in _exprs(_dashboard()):
        for name in metric_names(expr):
            queried.setdefault(name, set()).add(expr)
    assert len(queried) >= 25
    missing = {name: exprs for name, exprs in queried.items() if name not in served}
    assert not missing, f"the dashboard queries series the exporter does not serve: {missing}"


def test_the_check_catches_a_series_the_exporter_does_not_serve(served: set[str]) -> None:
    assert "wbsrun_progress_work_ratio" in served
    assert "wbsrun_progress_work" not in served
    assert metric_names("rate(wbsrun_progress_work[1m])") - served == {"wbsrun_progress_work"}


DOC = DASHBOARD.parents[1] / "docs" / "observability.md"


def _base(name: str) -> str:
    return re.sub(r"_(bucket|count|sum)$", "", name)


def test_docs_list_every_series_the_exporter_serves_and_no_other(served: set[str]) -> None:
    documented = set(re.findall(r"`(wbsrun_[a-z0-9_]+)`", DOC.read_text(encoding="utf-8")))
    ours = {_base(n) for n in served if n.startswith("wbsrun_")}
    assert ours - documented == set(), "served but not in docs/observability.md"
    assert documented - ours == set(), "documented but not served"

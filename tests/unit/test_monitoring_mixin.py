"""The monitoring mixin in k8s/monitoring: the alerting rules pass `promtool check rules` and their unit tests
(`promtool test rules`, promtool from tools/testtools/build.sh), the PrometheusRule is generated from rules.yaml, the
dashboard is sane, and every metric (and label) the dashboard and the rules use is one the orchestrator serves on
/metrics: the real app (runtime.build_app, the one `serve` runs) against an API server that is not there.

`.venv/bin/python -m tests.unit.test_monitoring_mixin --write` regenerates k8s/monitoring/prometheus-rules.yaml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from ai_storage_orchestrator.metrics import Metrics
from ai_storage_orchestrator.models import Status
from ai_storage_orchestrator.runtime import Orchestrator, build_app
from ai_storage_orchestrator.settings import Settings
from tests.cluster.local_cluster import cache_dir
from tests.cluster.processes import free_port

JSON = dict[str, Any]
ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "k8s" / "monitoring"
RULES = MONITORING / "rules.yaml"
RULES_TEST = MONITORING / "rules-test.yaml"
PROMETHEUS_RULE = MONITORING / "prometheus-rules.yaml"
DASHBOARD = MONITORING / "dashboard.json"
RUNBOOKS = ROOT / "docs" / "monitoring.md"
PROMTOOL_TIMEOUT = 60.0
# Labels Prometheus adds to every scraped series (the ServiceMonitor's target labels included), and histograms' `le`.
TARGET_LABELS = {"job", "instance", "pod", "namespace", "service", "endpoint", "container"}
METRIC = re.compile(r"\bai_storage_[a-z0-9_]+")
SELECTOR = re.compile(r"\b(ai_storage_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")

PROMETHEUS_RULE_HEADER = """\
# Generated from rules.yaml (the single source of the alerts) by tests/unit/test_monitoring_mixin.py: do not edit;
# edit rules.yaml and run `.venv/bin/python -m tests.unit.test_monitoring_mixin --write`. A unit test fails while
# this file differs from what rules.yaml gives. The PrometheusRule kind exists only with prometheus-operator; your
# Prometheus picks it up when its ruleSelector matches these labels (kube-prometheus-stack's Helm chart selects
# `release: <its release name>` unless ruleSelectorNilUsesHelmValues is false: add that label with a kustomize patch).
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: ai-storage-orchestrator
  namespace: kube-system
  labels:
    app.kubernetes.io/name: ai-storage-orchestrator
spec:
"""


def prometheus_rule_text() -> str:
    """prometheus-rules.yaml as rules.yaml gives it: the rule groups (without rules.yaml's leading comment) under
    `spec:`, indented, text otherwise unchanged (block scalars and comments stay as written)."""
    lines = RULES.read_text().splitlines(keepends=True)
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return PROMETHEUS_RULE_HEADER + "".join("  " + line if line.strip() else line for line in lines)


# Helpers ------------------------------------------------------------------------------------------------------
def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _alerts() -> list[JSON]:
    return [rule for group in _load(RULES)["groups"] for rule in group["rules"] if "alert" in rule]


def _panels() -> list[JSON]:
    """Every panel but rows (they group, they query nothing)."""
    found: list[JSON] = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found += [panel, *panel.get("panels", [])]
    return [p for p in found if p["type"] != "row"]


def _expressions() -> dict[str, str]:
    """Every PromQL expression of the mixin, by where it comes from."""
    found = {f"alert {a['alert']}": a["expr"] for a in _alerts()}
    for panel in _panels():
        for target in panel["targets"]:
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if variable["type"] == "query":
            found[f"variable {variable['name']}"] = variable["definition"]
    return found


def exported_metrics(exposition: str) -> dict[str, tuple[str, str]]:
    """The sample names a /metrics page can carry -> (family, type): a family is listed (HELP, TYPE) even before it
    has a sample, so this is every name, not only those observed so far."""
    names: dict[str, tuple[str, str]] = {}
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    for family in text_string_to_metric_families(exposition):
        if family.name.endswith("_created"):  # prometheus_client's creation time of a counter or histogram
            continue
        for suffix in suffixes[family.type]:
            names[family.name + suffix] = (family.name, family.type)
    return names


def _label_names() -> dict[str, set[str]]:
    """Family name -> its label names, as metrics.py declares them."""
    metrics = Metrics()
    found: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        name = getattr(value, "_name", None)
        if isinstance(name, str):
            found[name] = set(value._labelnames)
    return found


def _promtool() -> Path:
    """promtool as tools/testtools/build.sh builds it (AISO_TOOLS_BIN names its directory; without it, the directory
    the script prints). Missing, the test fails: it is never skipped."""
    directory = cache_dir("tools/testtools/build.sh", override="AISO_TOOLS_BIN")
    promtool = directory / "promtool"
    if not os.access(promtool, os.X_OK):
        source = "AISO_TOOLS_BIN" if os.environ.get("AISO_TOOLS_BIN") else "tools/testtools/build.sh --print"
        pytest.fail(
            f"promtool is not built: no {promtool} (the directory from {source}). Run `make tools-bin` "
            "(tools/testtools/build.sh builds it from the Go module proxy), then run the tests with "
            "AISO_TOOLS_BIN=$(tools/testtools/build.sh --print), as `make test` does.",
            pytrace=False,
        )
    return promtool


def _run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_promtool()), *args], cwd=MONITORING, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT, check=False
    )


# promtool -----------------------------------------------------------------------------------------------------
@pytest.mark.tools
def test_the_rules_pass_promtool_check() -> None:
    checked = _run_promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in checked.stdout


@pytest.mark.tools
def test_the_rules_unit_tests_pass() -> None:
    tested = _run_promtool("test", "rules", RULES_TEST.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in _load(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in _alerts()}
    assert names - fired == set(), "alerts no test fires"
    assert names - quiet == set(), "alerts no test keeps quiet"
    assert (fired | quiet) - names == set(), "tests of alerts that do not exist"


# The rules ----------------------------------------------------------------------------------------------------
def test_the_prometheus_rule_is_generated_from_rules_yaml() -> None:
    assert PROMETHEUS_RULE.read_text() == prometheus_rule_text(), (
        "k8s/monitoring/prometheus-rules.yaml is not what rules.yaml gives: "
        "run `.venv/bin/python -m tests.unit.test_monitoring_mixin --write`"
    )
    rule = _load(PROMETHEUS_RULE)
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"] == _load(RULES), "the same groups, rules, labels and annotations"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    headings = {_anchor(line) for line in RUNBOOKS.read_text().splitlines() if line.startswith("#")}
    for alert in _alerts():
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        assert alert["annotations"]["summary"].strip(), alert["alert"]
        assert alert["annotations"]["description"].strip(), alert["alert"]
        page, _, anchor = alert["annotations"]["runbook"].partition("#")
        assert page == "docs/monitoring.md", alert["alert"]
        assert anchor == alert["alert"].lower(), alert["alert"]
        assert anchor in headings, f"docs/monitoring.md has no section for {alert['alert']}"


def _anchor(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule: lower case, punctuation dropped, spaces -)."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^a-z0-9 _-]", "", text).replace(" ", "-")


def test_the_result_values_the_rules_match_are_statuses() -> None:
    statuses = {s.value for s in Status}
    for source, expr in _expressions().items():
        for metric, matchers in SELECTOR.findall(expr):
            for label, _op, value in MATCHER.findall(matchers):
                if label == "result":
                    assert set(value.split("|")) <= statuses, (source, metric, value)


# The dashboard ------------------------------------------------------------------------------------------------
def test_the_dashboard_is_sane() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    titles = [p["title"] for p in _panels()]
    assert len(titles) == len(set(titles)), "panel titles are unique"
    uids = [dashboard["uid"], *(p["uid"] for p in dashboard["panels"] if "uid" in p)]
    assert len(uids) == len(set(uids)), "uids are unique"
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no target"
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert 'job=~"$job"' in " ".join(t["expr"] for t in panel["targets"]), f"{panel['title']} ignores $job"


# Against what the orchestrator serves -------------------------------------------------------------------------
@pytest.fixture(scope="module")
async def served_metrics(tmp_path_factory: pytest.TempPathFactory) -> str:
    """/metrics of the real app on 127.0.0.1, its orchestrator started against an API server that is not there
    (the watches keep retrying)."""
    kubeconfig = tmp_path_factory.mktemp("kube") / "kubeconfig"
    server = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "none", "cluster": {"server": server}}],
                "users": [{"name": "none", "user": {"token": "unused"}}],
                "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
                "current-context": "none",
            }
        )
    )

    orchestrator = Orchestrator(Settings(kubeconfig=str(kubeconfig), namespace="ns", leader_election=False))
    http = TestClient(TestServer(build_app(orchestrator), host="127.0.0.1"))
    await http.start_server()
    try:
        response = await http.get("/metrics")
        assert response.status == 200
        return await response.text()
    finally:
        await http.close()


def test_every_metric_the_mixin_uses_is_served(served_metrics: str) -> None:
    exported = exported_metrics(served_metrics)
    assert "ai_storage_leader" in exported, "the page is the orchestrator's"
    for source, expr in _expressions().items():
        used = METRIC.findall(expr)
        assert used, f"{source} uses no ai_storage_ metric: {expr}"
        missing = sorted(set(used) - set(exported))
        assert not missing, f"{source} uses {missing}, not on /metrics"


def test_every_metric_served_is_on_the_dashboard(served_metrics: str) -> None:
    exported = exported_metrics(served_metrics)
    shown = {exported[m][0] for p in _panels() for t in p["targets"] for m in METRIC.findall(t["expr"])}
    assert {family for family, _kind in exported.values()} - shown == set(), "families the dashboard never shows"


def test_every_label_the_mixin_uses_is_one_of_its_metrics(served_metrics: str) -> None:
    exported = exported_metrics(served_metrics)
    labels = _label_names()
    for source, expr in _expressions().items():
        families = {exported[m] for m in METRIC.findall(expr)}
        allowed = set(TARGET_LABELS)
        for family, kind in families:
            allowed |= labels[family] | ({"le"} if kind == "histogram" else set())
        for metric, matchers in SELECTOR.findall(expr):
            family, kind = exported[metric]
            own = labels[family] | TARGET_LABELS | ({"le"} if metric.endswith("_bucket") else set())
            for label, _op, _value in MATCHER.findall(matchers):
                assert label in own, f"{source}: {metric} has no label {label!r}"
        for grouping in GROUPING.findall(expr):
            for label in (name.strip() for name in grouping.split(",") if name.strip()):
                assert label in allowed, f"{source}: no metric of it has label {label!r}"


def test_the_templates_name_labels_their_series_have(served_metrics: str) -> None:
    exported = exported_metrics(served_metrics)
    labels = _label_names()
    for alert in _alerts():
        families = {exported[m][0] for m in METRIC.findall(alert["expr"])}
        kept = _kept_labels(alert["expr"], set().union(*(labels[f] for f in families)) | TARGET_LABELS)
        text = " ".join(alert["annotations"].values())
        for label in re.findall(r"\$labels\.(\w+)", text):
            assert label in kept, f"{alert['alert']} shows {label}, which its series do not have"
    for panel in _panels():
        for target in panel["targets"]:
            families = {exported[m][0] for m in METRIC.findall(target["expr"])}
            kept = _kept_labels(target["expr"], set().union(*(labels[f] for f in families)) | TARGET_LABELS)
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target["legendFormat"]):
                assert label in kept, f"panel {panel['title']!r} shows {label}, which its series do not have"


def _kept_labels(expr: str, labels: set[str]) -> set[str]:
    """The labels the outermost aggregation keeps (its `by`), or all of them when it has none."""
    groupings = GROUPING.findall(expr)
    if not groupings or not re.match(r"\s*(sum|max|min|avg|count)\b|\s*histogram_quantile", expr):
        return labels
    return {name.strip() for name in groupings[0].split(",") if name.strip()}


# k8s/monitoring -----------------------------------------------------------------------------------------------
def _kustomize(directory: Path) -> list[JSON]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for its built-in kustomize) is not installed")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(directory)], check=True, capture_output=True, text=True, timeout=60
    )
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


@pytest.mark.tools
def test_the_monitoring_kustomization_renders_the_mixin() -> None:
    objects = {o["kind"]: o for o in _kustomize(MONITORING)}
    assert sorted(objects) == ["ConfigMap", "PrometheusRule", "ServiceMonitor"]
    assert {o["metadata"]["namespace"] for o in objects.values()} == {"kube-system"}
    assert json.loads(next(iter(objects["ConfigMap"]["data"].values()))) == json.loads(DASHBOARD.read_text())
    assert objects["PrometheusRule"]["spec"] == _load(RULES)


@pytest.mark.tools
def test_the_default_kustomization_leaves_the_monitoring_kinds_out() -> None:
    """prometheus-operator's kinds are not in every cluster: `kubectl apply -k k8s/` must not need them."""
    assert "monitoring" not in _load(ROOT / "k8s" / "kustomization.yaml")["resources"]
    assert {o["apiVersion"].split("/")[0] for o in _kustomize(ROOT / "k8s")}.isdisjoint({"monitoring.coreos.com"})


def test_the_service_monitor_scrapes_the_service() -> None:
    monitor = _load(MONITORING / "service-monitor.yaml")
    service = _load(ROOT / "k8s" / "deploy" / "service.yaml")
    deployment = _load(ROOT / "k8s" / "deploy" / "deployment.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert any(arg.startswith("--tls-cert-file=") for arg in container["args"]), "the port speaks TLS"
    assert endpoint["scheme"] == "https"
    deploy_script = (ROOT / "scripts" / "deploy.sh").read_text()
    assert endpoint["tlsConfig"]["ca"]["configMap"]["name"] in deploy_script, "the CA deploy.sh publishes"
    assert "DNS:$svc.kube-system.svc," in deploy_script, "the certificate names the serverName"
    assert endpoint["tlsConfig"]["serverName"] == f"{service['metadata']['name']}.kube-system.svc"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.test_monitoring_mixin --write   (regenerates prometheus-rules.yaml)")
    PROMETHEUS_RULE.write_text(prometheus_rule_text())
    print(f"wrote {PROMETHEUS_RULE.relative_to(ROOT)}")

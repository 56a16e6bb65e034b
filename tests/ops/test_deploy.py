"""The Dockerfile, Kubernetes manifests and Prometheus files: linted, validated against the
schemas, and cross-checked with the daemon's config and the TorchServe config."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from modelzoo.archiver import tool_path
from orchestrator.config import PIPELINE_DEFAULTS, AppConfig, options
from scripts.services.process import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
KUBERNETES_VERSION = "1.30.0"

# Subsets of the CRDs' OpenAPI schemas (KEDA 2.x, Prometheus Operator): no CRD schemas ship
# with kubernetes-validate, so these hold the fields Vigil relies on.
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): {
        "type": "object", "required": ["metadata", "spec"],
        "properties": {"spec": {
            "type": "object", "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {"type": "object", "required": ["name"]},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer"},
                "triggers": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["type", "metadata"],
                    "properties": {"type": {"const": "kafka"}, "metadata": {
                        "type": "object",
                        "required": ["bootstrapServers", "consumerGroup", "topic", "lagThreshold"],
                        "additionalProperties": {"type": "string"}}}}}}}}},
    ("keda.sh/v1alpha1", "TriggerAuthentication"): {
        "type": "object", "required": ["metadata", "spec"],
        "properties": {"spec": {"type": "object", "required": ["secretTargetRef"], "properties": {
            "secretTargetRef": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["parameter", "name", "key"],
                "additionalProperties": False,
                "properties": {"parameter": {"type": "string"}, "name": {"type": "string"},
                               "key": {"type": "string"}}}}}}}},
    # Strimzi 0.4x KafkaUser (kafka.strimzi.io/v1beta2): the fields Vigil sets.
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): {
        "type": "object", "required": ["metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["name", "labels"], "properties": {
                "labels": {"type": "object", "required": ["strimzi.io/cluster"]}}},
            "spec": {"type": "object", "required": ["authentication", "authorization"],
                     "additionalProperties": False, "properties": {
                "authentication": {"type": "object", "properties": {
                    "type": {"enum": ["tls", "tls-external", "scram-sha-512"]}}},
                "authorization": {"type": "object", "required": ["type", "acls"], "properties": {
                    "type": {"const": "simple"},
                    "acls": {"type": "array", "items": {
                        "type": "object", "required": ["resource", "operations"],
                        "properties": {
                            "resource": {"type": "object", "required": ["type", "name"],
                                         "properties": {
                                             "type": {"enum": ["topic", "group", "cluster",
                                                              "transactionalId"]},
                                             "patternType": {"enum": ["literal", "prefix"]}}},
                            "operations": {"type": "array", "minItems": 1, "items": {
                                "enum": ["Read", "Write", "Create", "Delete", "Alter",
                                         "Describe", "All", "IdempotentWrite",
                                         "ClusterAction", "DescribeConfigs",
                                         "AlterConfigs"]}}}}}}}}}}},
    ("monitoring.coreos.com/v1", "PodMonitor"): {
        "type": "object", "required": ["metadata", "spec"],
        "properties": {"spec": {
            "type": "object", "required": ["selector", "podMetricsEndpoints"],
            "properties": {"podMetricsEndpoints": {"type": "array", "minItems": 1, "items": {
                "type": "object", "required": ["port"],
                "properties": {"port": {"type": "string"}, "path": {"type": "string"},
                               "interval": {"type": "string", "pattern": "^[0-9]+[smh]$"}}}}}}}},
}


def documents() -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in documents() if doc["kind"] == kind]


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_hadolint_passes_on_both_image_targets():
    dockerfile = REPO_ROOT / "Dockerfile"
    result = subprocess.run([tool_path("hadolint"), "--failure-threshold", "warning",
                             str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    targets = re.findall(r"^FROM \S+ AS (\S+)$", dockerfile.read_text(), re.M)
    assert targets == ["orchestrator", "model-server"]


def test_each_container_runs_the_image_of_its_part():
    for container in _containers():
        image = container["image"].rsplit(":", 1)[0]
        wanted = "model-server" if container["name"] == "torchserve" else "orchestrator"
        assert image.endswith(f"/{wanted}"), (container["name"], image)


def test_model_servers_load_archives_the_manifest_builds():
    from modelzoo.manifest import load_manifest

    files = {spec.name: spec.file_name
             for spec in load_manifest(REPO_ROOT / "archives" / "manifest.yaml")}
    for container in (c for c in _containers() if c["name"] == "torchserve"):
        models = container["args"][container["args"].index("--models") + 1:]
        assert models and all(files[name] == file for name, file in
                              (model.split("=") for model in models)), models


def test_network_policies_admit_only_prometheus_to_metrics_and_callers_to_history():
    policies = {d["metadata"]["name"]: d["spec"] for d in of_kind("NetworkPolicy")}
    metrics = policies["vigil-metrics-from-prometheus"]
    assert metrics["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "vigil"}
    (rule,) = metrics["ingress"]
    assert {p["port"] for p in rule["ports"]} == {"metrics", "ts-metrics"}
    assert all(peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
               for peer in rule["from"])
    history = policies["vigil-history-from-its-callers"]
    assert history["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "minview"
    (rule,) = history["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["history"]
    assert all("podSelector" in peer for peer in rule["from"])  # never "from anywhere"
    minview = next(c for c in _containers() if c["args"][:2] == ["run", "minview"])
    token = next(e for e in minview["env"] if e["name"] == "VIGIL_TRIAGE_HISTORY_TOKEN")
    assert token["valueFrom"]["secretKeyRef"]["name"] == "vigil-secrets"


def test_the_image_runs_as_non_root_and_uses_the_repo_config():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert len(users) == 2 and all(u.split(":")[0] not in ("root", "0") for u in users)
    assert "COPY config.properties" in dockerfile and dockerfile.count("HEALTHCHECK") == 2
    entrypoint = (REPO_ROOT / "deploy" / "docker" / "entrypoint.sh").read_text()
    assert "--ts-config" in entrypoint and "disable-token" not in entrypoint


def test_every_manifest_validates_against_its_schema():
    for path, doc in documents():
        key = (doc["apiVersion"], doc["kind"])
        if key in CRD_SCHEMAS:
            jsonschema.validate(doc, CRD_SCHEMAS[key])
        else:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    kustomized = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(kustomized) == sorted(p.name for p in K8S.glob("*.yaml")
                                        if p.name != "kustomization.yaml")


def _pod_config() -> dict[str, str]:
    config_map = next(d for d in of_kind("ConfigMap")
                      if d["metadata"]["name"] == "torchserve-config")
    return properties(config_map["data"]["config.properties"])


def test_token_auth_stays_on_and_management_stays_on_loopback():
    pod_config = _pod_config()
    repo_config = properties((REPO_ROOT / "config.properties").read_text())
    for config in (pod_config, repo_config):
        assert config["disable_token_authorization"] == "false"
        assert config["management_address"].startswith("http://127.0.0.1:")
        assert config["inference_address"].startswith("http://127.0.0.1:")
        assert config["enable_model_api"] == "false"
    # The pod config differs from the repo's only where a pod must.
    changed = {k for k in repo_config if pod_config.get(k) != repo_config[k]}
    assert changed == {"metrics_address", "model_store"}
    text = "\n".join(p.read_text() for p in [*K8S.glob("*.yaml"), REPO_ROOT / "Dockerfile"])
    assert "TS_DISABLE_TOKEN_AUTHORIZATION" not in text and "disable-token" not in text


def _containers() -> list[dict]:
    return [c for d in of_kind("Deployment") for c in d["spec"]["template"]["spec"]["containers"]]


def _env(container: dict) -> dict[str, str]:
    config_map = next(d for d in of_kind("ConfigMap") if d["metadata"]["name"] == "vigil-config")
    values = dict(config_map["data"]) if container.get("envFrom") else {}
    values.update({e["name"]: e.get("value", "<secret>") for e in container.get("env", [])})
    return values


def test_env_names_are_real_settings_and_ports_match_the_config():
    known = {env for _, env, _ in options()} | {"TS_CONFIG_FILE", "KAFKA_SASL_PASSWORD"}
    pod_config = _pod_config()
    for container in _containers():
        env = _env(container)
        assert set(env) <= known, set(env) - known
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if container["name"] == "torchserve":
            assert ports["ts-metrics"] == int(pod_config["metrics_address"].rsplit(":", 1)[1])
            assert container["resources"]["requests"]["nvidia.com/gpu"] == "1"
            probe = container["readinessProbe"]["exec"]["command"]
            assert probe[:3] == ["vigil", "health", "torchserve"]
        else:
            assert ports["metrics"] == int(env.get("VIGIL_RUNTIME_METRICS_PORT",
                                                   AppConfig().runtime.metrics_port))
            assert env.get("VIGIL_RUNTIME_METRICS_ADDR") == "0.0.0.0"
            if "history" in ports:
                assert ports["history"] == int(env["VIGIL_TRIAGE_HISTORY_PORT"])
    serving = [c for c in _containers() if c["name"] == "daemon" and c["args"][1] != "minview"]
    for container in serving:  # talks to the TorchServe of its own pod, with its key
        env = _env(container)
        assert env["VIGIL_TORCHSERVE_URL"] == pod_config["inference_address"]
        assert env["VIGIL_TORCHSERVE_KEY_FILE"].startswith("/run/vigil/")


def test_scaling_follows_each_daemons_group_and_topic_above_the_in_flight_cap():
    in_flight = int(_env(_containers()[1]).get("VIGIL_RUNTIME_MAX_IN_FLIGHT",
                                               AppConfig().runtime.max_in_flight))
    deployments = {d["metadata"]["name"] for d in of_kind("Deployment")}
    scaled = {}
    for scaler in of_kind("ScaledObject"):
        target = scaler["spec"]["scaleTargetRef"]["name"]
        assert target in deployments
        trigger = scaler["spec"]["triggers"][0]["metadata"]
        pipeline = target.removeprefix("vigil-")
        defaults = PIPELINE_DEFAULTS[pipeline].get("kafka", {})
        assert trigger["topic"] == defaults.get("input_topic", AppConfig().kafka.input_topic)
        assert trigger["consumerGroup"] == defaults.get("group_id", AppConfig().kafka.group_id)
        assert int(trigger["lagThreshold"]) > in_flight
        scaled[pipeline] = scaler
    assert set(scaled) == {"audio", "vrt", "minview"}
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
               for b in of_kind("PodDisruptionBudget")}
    assert budgets == set(scaled)


def test_only_the_review_tool_may_write_decisions_and_each_daemon_its_own_topics():
    writers: dict[str, set[str]] = {}
    for user in of_kind("KafkaUser"):
        for acl in user["spec"]["authorization"]["acls"]:
            if acl["resource"]["type"] == "topic" and \
                    {"Write", "All"} & set(acl["operations"]):
                assert acl["resource"].get("patternType", "literal") == "literal"
                writers.setdefault(acl["resource"]["name"], set()).add(user["metadata"]["name"])
    assert writers["review.decisions"] == {"vigil-review"}
    [review] = [c for c in _containers() if c["name"] == "review"]
    env = _env(review)
    assert json.loads(env["VIGIL_KAFKA_EXTRA"])["sasl.username"] == "vigil-review"
    assert env["VIGIL_KAFKA_OUTPUT_TOPIC"] == "review.decisions"
    # Behind the proxy, whose header is trusted only because only the proxy gets in.
    assert env["VIGIL_REVIEW_TRUSTED_HEADER"] == "X-Auth-Request-Email"
    [policy] = [p for p in of_kind("NetworkPolicy")
                if p["spec"]["podSelector"]["matchLabels"].get(
                    "app.kubernetes.io/component") == "review"]
    assert policy["spec"]["ingress"] == [{
        "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "oauth2-proxy"}}}],
        "ports": [{"protocol": "TCP", "port": "review"}]}]
    for container in _containers():
        if container["name"] != "daemon":
            continue
        pipeline = container["args"][1]
        env = _env(container)
        extra = json.loads(env["VIGIL_KAFKA_EXTRA"])
        assert extra["sasl.username"] == f"vigil-{pipeline}"
        assert extra["sasl.password"] == "$(KAFKA_SASL_PASSWORD)"  # from its user's Secret
        kafka = PIPELINE_DEFAULTS[pipeline].get("kafka", {})
        output = kafka.get("output_topic", AppConfig().kafka.output_topic)
        dlq = f"{kafka.get('input_topic', AppConfig().kafka.input_topic)}.dlq"
        own = {topic for topic, users in writers.items() if f"vigil-{pipeline}" in users}
        assert own == ({dlq} if pipeline == "quality" else {output, dlq})


def test_pod_monitors_scrape_ports_the_pods_expose():
    exposed = {p["name"] for c in _containers() for p in c.get("ports", [])}
    for monitor in of_kind("PodMonitor"):
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in exposed


def test_promtool_accepts_the_config_and_the_alert_rules():
    for command in (["check", "config", str(PROMETHEUS / "prometheus.yml")],
                    ["check", "rules", str(PROMETHEUS / "alerts.yml")]):
        result = subprocess.run(["promtool", *command], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    alerts = {r["alert"] for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
              ["groups"] for r in g["rules"]}
    assert {"VigilConsumerLagGrowing", "VigilVrtSlaMissed", "VigilDeadLetterRateHigh",
            "TorchServe5xxRate", "TorchServeWorkerRestarts", "VigilEndToEndP99High",
            "VigilScoreDrift", "VigilRolloutRolledBack", "VigilRolloutInconclusive"} <= alerts


@pytest.mark.parametrize("name", ["serving", "livestream", "vrt", "triage", "model-health", "rollouts"])
def test_dashboards_name_only_metrics_that_exist(name):
    import json

    from orchestrator.metrics import Metrics

    board = json.loads((REPO_ROOT / "deploy" / "grafana" / f"{name}.json").read_text())
    vigil_names = {m.name for m in Metrics().registry.collect()}
    for panel in board["panels"]:
        for target in panel["targets"]:
            for metric in re.findall(r"\b(vigil_[a-z_]+)", target["expr"]):
                base = re.sub(r"_(bucket|sum|count|total)$", "", metric)
                assert base in vigil_names, f"{name}: {panel['title']}: {metric}"


def test_the_model_health_alerts_fire_when_they_should_and_only_then(tmp_path):
    """promtool's rule unit tests: a rollback pages for 30 minutes and clears by itself; a
    PSI over 0.25 alerts only once it has lasted 30 minutes; an inconclusive rollout alerts
    while it waits."""
    labels = 'model="audio_nsfw_hi",language="hi"'
    hindi = {"model": "audio_nsfw_hi", "language": "hi"}

    def quiet(alert: str, at: str) -> dict:
        return {"eval_time": at, "alertname": alert, "exp_alerts": []}

    def firing(alert: str, at: str, summary: str, runbook: str, **labels_: str) -> dict:
        return {"eval_time": at, "alertname": alert, "exp_alerts": [{
            "exp_labels": {**hindi, **labels_, "severity": "ticket"},
            "exp_annotations": {"summary": summary, "runbook": f"docs/OPERATIONS.md#{runbook}"}}]}

    cases = {"rule_files": [str(PROMETHEUS / "alerts.yml")], "evaluation_interval": "1m",
             "tests": [{
                 "interval": "1m",
                 "input_series": [
                     {"series": f"vigil_rollbacks_total{{{labels}}}", "values": "0x10 1x60"},
                     {"series": f'vigil_score_psi{{{labels},version="1.0"}}',
                      "values": "0.05x10 0.6x60"},
                     {"series": f'vigil_score_drift_p_value{{{labels},version="1.0"}}',
                      "values": "0.5x10 0.001x60"},
                     {"series": f"vigil_rollout_inconclusive{{{labels}}}",
                      "values": "0x5 1x10 0x10"}],
                 "alert_rule_test": [
                     quiet("VigilRolloutRolledBack", "9m"),
                     firing("VigilRolloutRolledBack", "20m",
                            "The candidate of audio_nsfw_hi (hi) was rolled back",
                            "rollout-rolled-back"),
                     quiet("VigilRolloutRolledBack", "60m"),
                     quiet("VigilRolloutInconclusive", "3m"),
                     firing("VigilRolloutInconclusive", "8m",
                            "The rollout of audio_nsfw_hi (hi) is inconclusive",
                            "rollout-inconclusive"),
                     quiet("VigilRolloutInconclusive", "20m"),
                     quiet("VigilScoreDrift", "30m"),
                     firing("VigilScoreDrift", "45m",
                            "audio_nsfw_hi 1.0 (hi) scores drift from its reference",
                            "score-drift", version="1.0")]}]}
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(cases))
    result = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr

"""registration.py: the configurations `serve --webhooks self` creates."""

from __future__ import annotations

import base64

from ai_storage_orchestrator.admission.registration import configuration_name, webhook_configurations

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_each_process_has_its_own_name() -> None:
    assert configuration_name("a_1") == configuration_name("a_1")
    assert configuration_name("a_1") != configuration_name("a_2")
    assert configuration_name("a_1").startswith("ai-storage-orchestrator-")
    assert len(configuration_name("x" * 300)) <= 63


def test_both_webhooks_fail_open_call_loopback_and_trust_the_ca() -> None:
    mutating, validating = webhook_configurations(name="n", base_url="https://127.0.0.1:8443", ca_bundle=CA)
    assert (mutating["kind"], validating["kind"]) == ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
    [mutate] = mutating["webhooks"]
    [evict] = validating["webhooks"]
    assert mutate["clientConfig"] == {
        "url": "https://127.0.0.1:8443/mutate-pods",
        "caBundle": base64.b64encode(CA).decode(),
    }
    assert evict["clientConfig"]["url"] == "https://127.0.0.1:8443/validate-eviction"
    for webhook in (mutate, evict):
        assert webhook["failurePolicy"] == "Ignore"
        assert webhook["timeoutSeconds"] == 5
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["matchPolicy"] == "Equivalent"
        assert "namespaceSelector" not in webhook
    assert mutate["sideEffects"] == "None"
    assert evict["sideEffects"] == "NoneOnDryRun"
    [(mutate_rule,)] = [mutate["rules"]]
    [(evict_rule,)] = [evict["rules"]]
    assert (mutate_rule["operations"], mutate_rule["resources"]) == (["CREATE"], ["pods"])
    assert (evict_rule["operations"], evict_rule["resources"]) == (["CREATE"], ["pods/eviction"])


def test_namespace_scoped_mode_limits_the_webhooks_to_its_namespaces() -> None:
    configurations = webhook_configurations(name="n", base_url="https://h", ca_bundle=CA, namespaces=("b", "a"))
    for configuration in configurations:
        [webhook] = configuration["webhooks"]
        assert webhook["namespaceSelector"] == {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "b"]}]
        }

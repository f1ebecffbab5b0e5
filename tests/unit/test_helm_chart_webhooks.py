"""The chart's `webhooks.enabled` renders what kustomize renders from k8s/webhooks (docs/webhooks.md); off by
default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_helm_chart_render import assert_same_objects, container, kustomize, one, render

pytestmark = pytest.mark.tools


def test_webhooks_enabled_renders_what_kustomize_renders_from_k8s_webhooks(tmp_path: Path) -> None:
    chart = render(tmp_path, {"webhooks": {"enabled": True}})
    assert_same_objects(chart, kustomize("k8s/webhooks"))


def test_webhooks_are_off_by_default(tmp_path: Path) -> None:
    chart = render(tmp_path)
    assert not [o for o in chart if o["kind"].endswith("WebhookConfiguration")]
    assert not [a for a in container(chart)["args"] if a.startswith("--webhook")]


def test_without_cert_manager_the_ca_bundle_is_given(tmp_path: Path) -> None:
    chart = render(tmp_path, {"webhooks": {"enabled": True, "injectCAFrom": "", "caBundle": "Q0E="}})
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        configuration = one(chart, kind)
        assert "annotations" not in configuration["metadata"]
        [webhook] = configuration["webhooks"]
        assert webhook["clientConfig"]["caBundle"] == "Q0E="

"""kube-apiserver's own request counters (its /metrics, `apiserver_request_total`), to count the API requests a
burst of work caused, by verb and resource. Every client of the API server is counted (the orchestrator, KWOK, the
controller manager, this bench), so requests are attributed by what only one of them does."""

from __future__ import annotations

import re
from collections import Counter

from ai_storage_orchestrator.kube.resources import KubeApi

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


async def request_counts(api: KubeApi) -> Counter[str]:
    """Requests so far, keyed 'VERB resource[/subresource]' (all response codes together)."""
    response = await api.api_client.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False, _request_timeout=30
    )
    async with response:
        text = (await response.read()).decode()
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[f"{labels.get('verb', '?')} {resource}"] += int(float(match["value"]))
    return counts


def per_unit(before: Counter[str], after: Counter[str], units: int, *, minimum: float = 0.1) -> dict[str, float]:
    """(after - before) / units for every key that changed by at least `minimum` per unit, largest first."""
    if units <= 0:
        return {}
    delta = {key: (after[key] - before[key]) / units for key in after}
    kept = {key: round(value, 2) for key, value in delta.items() if value >= minimum}
    return dict(sorted(kept.items(), key=lambda item: item[1], reverse=True))

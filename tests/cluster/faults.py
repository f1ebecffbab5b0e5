"""Faults injected into the local control plane: restart a component, compact etcd."""

from __future__ import annotations

import json
import urllib.request

from tests.cluster.local_cluster import LocalCluster


def restart_apiserver(cluster: LocalCluster) -> None:
    """Stop kube-apiserver and start it again on the same port (clients see their connections drop)."""
    apiserver = next(p for p in cluster.processes if p.name == "kube-apiserver")
    apiserver.stop()
    apiserver.start()
    cluster.wait_apiserver_ready(apiserver)


def compact_etcd(etcd_url: str, revision: int) -> None:
    """Compact etcd's history up to `revision`: watches from older resourceVersions get 410 Gone."""
    body = json.dumps({"revision": str(revision), "physical": True}).encode()
    request = urllib.request.Request(f"{etcd_url}/v3/kv/compaction", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()

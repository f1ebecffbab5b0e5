"""What a comparison run is asked to do (the flags of `ai-storage-orchestrator compare`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ai_storage_orchestrator.compare.cluster import CompareError
from ai_storage_orchestrator.compare.results import WINDOW_RULES
from ai_storage_orchestrator.compare.workload import PROCESS_SECONDS
from ai_storage_orchestrator.rest_client import DEFAULT_URL

SOURCES = ("auto", "cgroup", "kubelet")
# The kubelet lists containers once a second; timed moves in a fixed rhythm would all meet that timer at one phase.
TIMING_SPREAD_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Options:
    namespace: str = "ai-migration-compare"
    source_node: str | None = None
    target_node: str | None = None
    orchestrator_url: str = DEFAULT_URL
    token: str | None = None
    ca_file: str | None = None  # CA of an https:// orchestrator, besides the system trust store
    ca_data: str | None = None  # the same as PEM text (discovered: ConfigMap kube-system/ai-storage-orchestrator-ca)
    server_name: str | None = None  # TLS name to verify when the URL names an address (discovered orchestrator)
    minted_for: str | None = None  # "namespace/name" of the ServiceAccount whose token was minted: grant it access
    kubeconfig: str | None = None
    samples: int = 20
    trim: int = 3
    interval: float = 1.0
    window_start: str = "ready"
    source: str = "auto"
    threshold: float = 20.0
    keep: bool = False
    workload: str = "auto"
    allow_unmeasured: bool = False
    pvc: str | None = None
    nfs_server: str | None = None
    nfs_path: str = "/exports/training-data"
    complete_after: str = f"{PROCESS_SECONDS}s"
    timeout: float = 900.0
    max_reads: int | None = None
    timing_pairs: int = 0  # after TEST 2: this many more native + orchestrator migrations, timed only
    timing_spread: float = TIMING_SPREAD_SECONDS  # each timed move first waits a random 0 to this many seconds

    def validate(self) -> None:
        if self.samples < 1:
            raise CompareError("--samples must be at least 1")
        if self.trim < 0 or self.samples <= 2 * self.trim:
            raise CompareError(f"--trim {self.trim} leaves nothing of {self.samples} samples: need samples > 2 x trim")
        if self.interval <= 0:
            raise CompareError("--interval must be greater than 0")
        if self.window_start not in WINDOW_RULES:
            raise CompareError(f"--window-start must be one of {', '.join(WINDOW_RULES)}")
        if self.timing_pairs < 0:
            raise CompareError("--timing-pairs must not be negative")
        if not self.timing_spread >= 0:
            raise CompareError("--timing-spread must not be negative")
        if self.source not in SOURCES:
            raise CompareError(f"--source must be one of {', '.join(SOURCES)}")

    @property
    def reads_budget(self) -> int:
        return self.max_reads or 2 * (self.samples + 1)

    def settings(self) -> dict[str, Any]:
        values = asdict(self)
        values.pop("token")
        values["token"] = "set" if self.token else None
        values["ca_data"] = "set" if self.ca_data else None
        values["max_reads"] = self.reads_budget
        return values

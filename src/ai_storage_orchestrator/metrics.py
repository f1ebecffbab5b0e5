"""Prometheus metrics, one registry per process (tests build their own), prefix `ai_storage_`."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "ai_storage"
_PHASE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.migrations_total = Counter(
            f"{PREFIX}_migrations_total", "Migrations that ended, by result.", ["result"], registry=r
        )
        self.migrations_started_total = Counter(
            f"{PREFIX}_migrations_started_total", "Migrations accepted, by trigger.", ["trigger"], registry=r
        )
        self.active_migrations = Gauge(f"{PREFIX}_active_migrations", "Migrations in flight.", registry=r)
        self.phase_duration = Histogram(
            f"{PREFIX}_migration_phase_duration_seconds",
            "Time spent in each migration phase.",
            ["phase"],
            buckets=_PHASE_BUCKETS,
            registry=r,
        )
        self.migration_duration = Histogram(
            f"{PREFIX}_migration_duration_seconds",
            "Migration wall time from start to its end, by result.",
            ["result"],
            buckets=_PHASE_BUCKETS,
            registry=r,
        )
        self.containers_total = Counter(
            f"{PREFIX}_containers_total", "Containers planned by migrations, by action.", ["action"], registry=r
        )
        self.cpu_requests_freed = Counter(
            f"{PREFIX}_cpu_requests_freed_millicores_total",
            "CPU requests (millicores) no longer reserved because completed containers were left out.",
            registry=r,
        )
        self.memory_requests_freed = Counter(
            f"{PREFIX}_memory_requests_freed_bytes_total",
            "Memory requests (bytes) no longer reserved because completed containers were left out.",
            registry=r,
        )
        self.watch_relists = Counter(
            f"{PREFIX}_watch_relists_total", "Full LISTs made by watch streams.", ["resource"], registry=r
        )
        self.watch_reconnects = Counter(
            f"{PREFIX}_watch_reconnects_total", "Watch streams reconnected after an error.", ["resource"], registry=r
        )
        self.listener_errors = Counter(
            f"{PREFIX}_listener_errors_total",
            "Cache change listeners that raised (the change was applied, the watch went on), by kind.",
            ["kind"],
            registry=r,
        )
        self.task_restarts = Counter(
            f"{PREFIX}_task_restarts_total",
            "Supervised background tasks restarted after they crashed or ended, by task.",
            ["task"],
            registry=r,
        )
        self.http_requests = Counter(
            f"{PREFIX}_http_requests_total",
            "HTTP requests, by route and status code.",
            ["route", "method", "code"],
            registry=r,
        )
        self.http_duration = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "HTTP request latency, by route.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.leader = Gauge(f"{PREFIX}_leader", "1 when this replica is the active leader.", registry=r)

"""Results shaped like bench/results/latest.json, small enough to read in a test."""

from __future__ import annotations

import copy
from typing import Any

from bench import stats

JSON = dict[str, Any]


def summary(n: int, *, value: float = 10.0) -> JSON:
    return stats.summary([value + i for i in range(n)], digits=1)


def scale_outcome(*, pods: int = 10_000, nodes: int = 100) -> JSON:
    burst = {
        "requested": 200,
        "accepted": 200,
        "rejected": {},
        "outcomes": {"Completed": 200},
        "errors": 0,
        "all_posted_s": 0.9,
        "all_done_s": 15.1,
        "throughput_per_s": 13.2,
        "post_ms": summary(200),
        "post_server_side_ms": summary(200),
        "migration_duration_s": summary(200),
        "phases_median_ms": {"Validating": 2384.5},
        "cpu_s_by_process": {"orchestrator": 6.8},
        "orchestrator_cpu_ms_per_migration": 34.2,
        "apiserver_requests_per_migration": {"POST events": 9.0},
    }
    return {
        "size": {"pods": pods, "nodes": nodes, "migrations": 200, "patches": 2000},
        "population": {"pods": pods, "running": pods, "create_s": 26.4, "all_running_s": 55.8, "create_errors": {}},
        "sync_s": 2.6,
        "memory_after_sync": {"rss_mib": 198.4, "hwm_mib": 198.4},
        "events": {
            "events": 2001,
            "absorbed_s": 6.391,
            "absorbed_per_s": 313.1,
            "patch_rate_per_s": 313.4,
            "lag_after_last_patch_ms": 9.0,
            "cpu_us_per_event": 379.8,
            "cpu_bound_capacity_per_s": 2632.9,
            "cpu_s_by_process": {"orchestrator": 0.76},
        },
        "migrations": burst,
        "migrations_more_workers": {"workers": 16, **copy.deepcopy(burst)},
        "memory_at_end": {"rss_mib": 233.0, "hwm_mib": 233.0},
        "orchestrator_command": "ai-storage-orchestrator serve",
        "per_node_cap": 4,
        "error": None,
    }


def results(*, quick: bool = False, rounds: int = 50, pods: int = 10_000, nodes: int = 100) -> JSON:
    """Every scenario, at the published scale unless told otherwise."""
    n = rounds
    method = {
        "wall_ms": summary(n),
        "to_ready_ms": summary(n),
        "downtime_ms": summary(n),
        "to_target_created_ms": summary(n),
        "ready_to_completed_ms": summary(n),
        "ratio_to_native": {"pairs": n, "median": 3.5, "p90": 4.0},
        "extra_vs_native_ms": 100.0,
        "native_ms_for_ratio_1_5": 200.0,
        "phases_median_ms": {"Pending": 7.5},
        "errors": [],
    }
    load = {"latency_ms": summary(7500, value=1.0), "send_lag_ms": summary(7500, value=0.1), "error_count": 0}
    return {
        "command": "make bench",
        "finished_at": "2026-01-01T00:00:00Z",
        "machine": {"nproc": 2, "cpu_model": "cpu", "memory_gib": 8.0, "python": "3.11.7", "kernel": "6"},
        "scenarios": {
            "decision": {"quick": quick, "results": {"plan": {"median_us": 245.0, "best_us": 235.0, "batches": 7}}},
            "migration": {
                "quick": quick,
                "rounds": rounds,
                "summary": {
                    "methods": {
                        "native": {"wall_ms": summary(n), "to_ready_ms": summary(n), "downtime_ms": summary(n)},
                        "checkpoint-restart": copy.deepcopy(method),
                        "make-before-break": copy.deepcopy(method),
                    },
                    "post_all_ms": summary(2 * n),
                },
            },
            "api": {
                "quick": quick,
                "results": {
                    "get_open": {**load, "mode": "open", "target_rps": 500.0, "duration_s": 15.0, "achieved_rps": 500},
                    "get_closed": {**load, "mode": "closed", "concurrency": 32, "duration_s": 5.0},
                    "dry_run_open": {**load, "mode": "open", "target_rps": 200.0, "duration_s": 10.0},
                    "dry_run_closed": {**load, "mode": "closed", "concurrency": 32, "duration_s": 5.0},
                },
            },
            "scale": {"quick": quick, "outcome": scale_outcome(pods=pods, nodes=nodes)},
            "checkpoint": {
                "quick": quick,
                "sizes": [
                    {"artifact_mib": 64, "status": "completed", "throughput_mib_s": 69.3, "rss_growth_mib": 5.9},
                    {"artifact_mib": 1024, "status": "completed", "throughput_mib_s": 76.1, "rss_growth_mib": 4.7},
                ],
            },
        },
        "profiles": {},
    }

"""The plugin's Prometheus metrics, computed from its status (plain Python).

orthanc_bridge.py publishes them with orthanc.SetMetricsValue after each
step of the sync worker (in the worker thread: at least every
PollInterval), so they appear in Orthanc's /tools/metrics-prometheus
(Orthanc's MetricsEnabled, default true). Names and meanings are in
docs/operations.md ("Metrics").
"""
import time


class Metrics:
    """Turns the status (status.Status.to_json) and the worklist's status
    into {name: float}. Keeps one thing itself: when the worker was last
    caught up, for the sync lag."""

    def __init__(self, clock=time.time):
        self._clock = clock
        self._caught_up_at = None

    def values(self, status, worklist):
        now = self._clock()
        pending = status.get("pending")
        if self._caught_up_at is None or not pending:
            # Until the first step the worker has not seen a backlog yet.
            self._caught_up_at = now
        last_push = status.get("last_push") or {}
        audit = status.get("audit") or {}
        values = {
            # Seconds since the worker last had every change of Orthanc in
            # GNU Health (0 while it has): how far GNU Health is behind.
            "gnuhealth_sync_lag_seconds": now - self._caught_up_at,
            "gnuhealth_pending_changes": pending or 0,
            "gnuhealth_failed_studies": len(status.get("failed") or []),
            "gnuhealth_pushes_total": status.get("pushes") or 0,
            "gnuhealth_last_push_duration_seconds": last_push.get("seconds") or 0,
            "gnuhealth_reachable": 1 if status.get("gnuhealth_reachable") else 0,
            "gnuhealth_audit_repairs_total": audit.get("repaired") or 0,
        }
        if worklist.get("enabled", True):
            age = worklist.get("age_seconds")
            values["gnuhealth_worklist_queries_total"] = worklist.get("queries") or 0
            # -1 until the first good load (Prometheus has no null).
            values["gnuhealth_worklist_age_seconds"] = -1 if age is None else age
        return {name: float(value) for name, value in values.items()}

"""What the worker is doing, read by GET /gnuhealth/status from another thread."""
import copy
import threading


class Status:
    def __init__(self):
        self._lock = threading.Lock()
        self._values = {
            "cursor": None,
            "last_change": None,
            "last_error": None,
            "gnuhealth_reachable": None,  # None until the first contact
            # {"at", "studies", "deleted", "seconds"}: the last accepted push
            # and how long its RPC took.
            "last_push": None,
            "pushes": 0,  # RPC calls GNU Health accepted since the start
            "next_attempt_in": None,
            "resync": {"running": False, "done": 0, "total": 0},
            # The continuous audit (audit.py): studies compared and repaired
            # since the start, whether a pass is under way, when the last
            # whole pass ended; "supported": false when GNU Health lacks
            # audit_summary (then only deletions are compared).
            "audit": {"running": False, "checked": 0, "repaired": 0,
                      "last_full_pass": None, "supported": True},
            "pending_deletions": 0,
            # Studies GNU Health holds in conflict, as its answer to their
            # last push said: [{"orthanc_id", "note"}]; staff resolve them.
            "conflicts": [],
            # Studies pushed as still receiving, waiting for StableStudy or
            # StableAge seconds without a new instance.
            "receiving": 0,
            # The last upload this node imported (uploads.py): {"id",
            # "state", "message", "stored", "skipped", "failed"}.
            "last_upload": None,
        }
        self._failed = []

    def update(self, **values):
        with self._lock:
            unknown = set(values) - set(self._values)
            if unknown:
                raise KeyError(f"unknown status field(s) {sorted(unknown)}")
            self._values.update(values)

    def set_failed(self, failed):
        """`failed`: list of dicts (already in their public shape)."""
        with self._lock:
            self._failed = copy.deepcopy(failed)

    def get(self, name):
        with self._lock:
            return copy.deepcopy(self._values[name])

    def to_json(self):
        with self._lock:
            data = copy.deepcopy(self._values)
            data["failed"] = copy.deepcopy(self._failed)
        cursor, last = data["cursor"], data["last_change"]
        data["pending"] = max(last - cursor, 0) if None not in (cursor, last) else None
        return data

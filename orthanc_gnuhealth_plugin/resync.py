"""POST /gnuhealth/resync: re-push the whole archive, one page per step.

Orthanc pages /studies by offset: a study deleted meanwhile shifts the later
ones back, and a plain `since += limit` would skip them. So each page is read
from one page earlier and resumes after the last study pushed; if that study
is gone, the whole window is pushed again (idempotent) rather than risk a gap.
The progress is in memory: a resync restarts from scratch after a restart.
"""
import threading


class Resync:
    def __init__(self, settings, orthanc, status, log, on_finished):
        self._settings = settings
        self._orthanc = orthanc
        self._status = status
        self._log = log
        self._on_finished = on_finished
        self._lock = threading.Lock()  # start() comes from Orthanc's HTTP threads
        self._state = None  # {"since", "done", "total", "last_id"} while running

    def start(self):
        """Begin; False if a resync is running already."""
        with self._lock:
            if self._state is not None:
                return False
            statistics = self._orthanc.get("/statistics") or {}
            total = int(statistics.get("CountStudies", 0))
            self._state = {"since": 0, "done": 0, "total": total, "last_id": None}
        self._status.update(resync={"running": True, "done": 0, "total": total})
        self._log("info", f"GNU Health: re-pushing all {total} studies of the archive")
        return True

    def step(self, push_studies):
        """Push one page with `push_studies(ids)`; True while the resync goes on."""
        with self._lock:
            state = dict(self._state) if self._state else None
        if state is None:
            return False
        limit = self._settings.studies_per_push
        window_start = max(0, state["since"] - limit)
        ids = self._orthanc.get(f"/studies?since={window_start}&limit={2 * limit}") or []
        last_id = state.get("last_id")
        start = ids.index(last_id) + 1 if last_id in ids else 0
        chunk = ids[start:start + limit]
        push_studies(chunk)
        done = state["done"] + len(chunk)
        total = max(state["total"], done)
        running = bool(chunk)
        with self._lock:
            self._state = ({"since": window_start + start + len(chunk), "done": done,
                            "total": total, "last_id": chunk[-1]}
                           if running else None)
        self._status.update(resync={"running": running, "done": done, "total": total})
        if not running:
            self._log("info", f"GNU Health: re-push of the archive finished ({done} studies)")
            self._on_finished()
        return running

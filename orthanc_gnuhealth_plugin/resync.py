"""POST /gnuhealth/resync: re-push the whole archive, one page per step.

Orthanc pages /studies by offset: a study deleted meanwhile shifts the later
ones back, and a plain `since += limit` would skip them. So each page is read
from one page earlier and resumes after the last study pushed; if that study
is gone, the whole window is pushed again (idempotent) rather than risk a gap.
The progress is in memory: a resync restarts from scratch after a restart.

Pipelined: while GNU Health stores a page, a second thread reads the next
one from Orthanc (in-process REST only; the RPC stays in the worker thread),
at most one page ahead and joined before the step returns. The page read
ahead is used by the next step only if the resync is where it expected and
no deletion was seen since (`deletions_seen`): a study deleted meanwhile
must not be pushed back as available.
"""
import threading


class Resync:
    def __init__(self, settings, orthanc, status, log, on_finished, deletions_seen=lambda: 0):
        self._settings = settings
        self._orthanc = orthanc
        self._status = status
        self._log = log
        self._on_finished = on_finished
        self._deletions_seen = deletions_seen  # a counter of the deletions seen so far
        self._lock = threading.Lock()  # start() comes from Orthanc's HTTP threads
        self._state = None  # {"since", "done", "total", "last_id"} while running
        self._ahead = None  # (state key, deletions seen, page) read ahead

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

    def step(self, read, push):
        """Push one page: `read(ids)` -> their records (Orthanc only, may run
        in a second thread), `push(ids, records)`; True while the resync goes on."""
        with self._lock:
            state = dict(self._state) if self._state else None
        if state is None:
            self._ahead = None
            return False
        page = self._page_ahead(state) or self._read_page(state, read)
        chunk, records, since = page
        if chunk:
            following = {**state, "since": since, "last_id": chunk[-1]}
            reader = threading.Thread(target=self._read_ahead, args=(following, read),
                                      name="gnuhealth-resync-read")
            reader.start()
            try:
                push(chunk, records)
            finally:
                reader.join()
        done = state["done"] + len(chunk)
        total = max(state["total"], done)
        running = bool(chunk)
        with self._lock:
            self._state = ({"since": since, "done": done, "total": total,
                            "last_id": chunk[-1]} if running else None)
        self._status.update(resync={"running": running, "done": done, "total": total})
        if not running:
            self._ahead = None
            self._log("info", f"GNU Health: re-push of the archive finished ({done} studies)")
            self._on_finished()
        return running

    def _read_page(self, state, read):
        """(ids of the next page, their records, `since` after it)."""
        limit = self._settings.studies_per_push
        window_start = max(0, state["since"] - limit)
        ids = self._orthanc.get(f"/studies?since={window_start}&limit={2 * limit}") or []
        last_id = state.get("last_id")
        start = ids.index(last_id) + 1 if last_id in ids else 0
        chunk = ids[start:start + limit]
        return chunk, read(chunk), window_start + start + len(chunk)

    def _read_ahead(self, state, read):
        self._ahead = None
        seen = self._deletions_seen()
        try:
            page = self._read_page(state, read)
        except Exception:  # noqa: B902 - read again, in the worker thread, next step
            return
        self._ahead = ((state["since"], state["last_id"]), seen, page)

    def _page_ahead(self, state):
        "The page read ahead for `state`, if still good."
        ahead, self._ahead = self._ahead, None
        if ahead and ahead[0] == (state["since"], state["last_id"]) \
                and ahead[1] == self._deletions_seen():
            return ahead[2]
        return None

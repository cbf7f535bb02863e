"""What the sync worker owes GNU Health and must not forget in a crash.

Besides the cursor, three things survive a restart, as one JSON document
in a global property (the "state": `orthanc.get_state()` / `set_state(dict)`):
- deletions Orthanc made that GNU Health has not taken yet (the OnChange
  callback notes them; with SQLite they are not in the /changes log);
- studies GNU Health refused, with their reason and their own back-off;
- studies still receiving: pushed as not complete, with Orthanc's LastUpdate
  of the study and the worker's time when it first saw that value. Orthanc
  keeps its stability timers in memory, so a study still arriving when
  Orthanc dies never gets its StableStudy change: this list is what makes
  it complete once it had no new instance for StableAge seconds.

The document is written only when it changed, and always before the
cursor moves past what it protects.
"""
import dataclasses
import datetime
import json
import threading
from dataclasses import dataclass

# A failure reason kept in the state property is cut to this size.
MAX_REASON = 2000
LEVELS = ("study", "series", "instance")


def back_off_delay(settings, failures):
    """Capped exponential back-off: min, 2*min, 4*min ... max."""
    if failures <= 0:
        return 0.0
    return min(settings.retry_max_delay, settings.retry_min_delay * 2 ** min(failures - 1, 60))


def iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(
        timespec="seconds")


@dataclass
class FailedStudy:
    orthanc_id: str
    study_uid: str
    reason: str
    first_attempt: float
    last_attempt: float
    retries: int
    next_retry: float

    @classmethod
    def from_state(cls, values):
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})

    def to_json(self):
        return {
            "study_uid": self.study_uid,
            "orthanc_id": self.orthanc_id,
            "reason": self.reason,
            "retries": self.retries,
            "since": iso(self.first_attempt),
            "last_attempt": iso(self.last_attempt),
            "next_retry": iso(self.next_retry),
        }


class Pending:
    """Pending deletions and failed studies, persisted in the state property;
    published to `status` (`failed`, `pending_deletions`)."""

    def __init__(self, settings, orthanc, status, log, clock):
        self._settings = settings
        self._orthanc = orthanc
        self._status = status
        self._log = log
        self._clock = clock
        self._lock = threading.Lock()
        self._noted = []  # deletions seen by the callback, not yet persisted
        self._deletions_seen = 0  # how many deletions were ever seen (resync.py)
        self.deleted = []  # persisted deletions GNU Health has not taken yet
        self.failed = {}  # Orthanc study id -> FailedStudy
        # Orthanc study id -> {"last_update": Orthanc's LastUpdate, "seen": the
        # worker's clock when it first saw that LastUpdate}
        self.receiving = {}
        self._saved = None  # the JSON last written to the state property

    # ---- the state property ----

    def load(self):
        state = self._orthanc.get_state() or {}
        self.deleted = [d for d in state.get("deleted", [])
                        if isinstance(d, dict) and d.get("level") in LEVELS]
        for values in state.get("failed", []):
            try:
                failed = FailedStudy.from_state(values)
            except (KeyError, TypeError):
                continue
            # Retry soon after a restart: the cause may have been fixed.
            failed.next_retry = min(failed.next_retry, self._clock())
            self.failed[failed.orthanc_id] = failed
        self.receiving = {i: {"last_update": w.get("last_update"), "seen": float(w["seen"])}
                          for i, w in (state.get("receiving") or {}).items()
                          if isinstance(w, dict) and isinstance(w.get("seen"), (int, float))}
        self._saved = self._json()
        self._publish_failed()
        self._status.update(receiving=len(self.receiving))
        if self.deleted or self.failed or self.receiving:
            self._log("info", f"GNU Health: resuming with {len(self.deleted)} deletion(s) "
                              f"to send, {len(self.failed)} failed study(ies) and "
                              f"{len(self.receiving)} study(ies) still receiving")

    def save(self):
        text = self._json()
        if text != self._saved:
            self._orthanc.set_state(json.loads(text))
            self._saved = text
        self._status.update(pending_deletions=len(self.deleted),
                            receiving=len(self.receiving))

    def _json(self):
        return json.dumps({"deleted": self.deleted,
                           "failed": [dataclasses.asdict(f) for f in self.failed.values()],
                           "receiving": self.receiving},
                          sort_keys=True)

    # ---- deletions ----

    def note_deleted(self, gone):
        """From Orthanc's threads: no I/O, persisted by `persist_noted`."""
        with self._lock:
            self._noted.append(gone)
            self._deletions_seen += 1

    def deletions_seen(self):
        "A counter of the deletions seen, by the callback or in /changes."
        with self._lock:
            return self._deletions_seen

    def persist_noted(self):
        with self._lock:
            noted, self._noted = self._noted, []
        if noted:
            self.add_deleted(noted)
            self.save()

    def add_deleted(self, deleted):
        """Add deletions not already pending; returns them all."""
        known = {(d["level"], d["orthanc_id"]) for d in self.deleted}
        for gone in deleted:
            if (gone["level"], gone["orthanc_id"]) not in known:
                known.add((gone["level"], gone["orthanc_id"]))
                self.deleted.append(gone)
                with self._lock:
                    self._deletions_seen += 1
        return self.deleted

    def deletions_sent(self):
        self.deleted = []
        self.save()

    # ---- failed studies ----

    def succeeded(self, record):
        if self.failed.pop(record["orthanc_id"], None):
            self._log("info", f"GNU Health accepted study {record['study_uid']} "
                              f"after earlier failures")
            self._publish_failed()
            self.save()

    def record_failure(self, record, reason):
        now = self._clock()
        failed = self.failed.get(record["orthanc_id"])
        if failed is None:
            failed = FailedStudy(record["orthanc_id"], record["study_uid"],
                                 reason[:MAX_REASON], first_attempt=now, last_attempt=now,
                                 retries=0, next_retry=now)
            self.failed[record["orthanc_id"]] = failed
        else:
            failed.retries += 1
            failed.reason, failed.last_attempt = reason[:MAX_REASON], now
        failed.next_retry = now + back_off_delay(self._settings, failed.retries + 1)
        self._publish_failed()
        self.save()
        self._log("error", f"GNU Health rejected study {record['study_uid']} (Orthanc "
                           f"{record['orthanc_id']}): {reason}; kept in the failed list, "
                           f"retried at {iso(failed.next_retry)} or with POST "
                           f"/gnuhealth/studies/{record['orthanc_id']}/sync")

    def due(self):
        """Failed studies whose retry time has come."""
        now = self._clock()
        return [i for i, f in self.failed.items() if f.next_retry <= now]

    def forget(self, orthanc_id):
        """The study left Orthanc: nothing to retry."""
        if self.failed.pop(orthanc_id, None):
            self._publish_failed()
            self.save()

    def _publish_failed(self):
        self._status.set_failed([f.to_json() for f in self.failed.values()])

    # ---- studies still receiving ----

    def watch(self, orthanc_id, last_update):
        """The study is still arriving; its quiet time restarts whenever its
        LastUpdate changes. Saved with the next `save()`."""
        watched = self.receiving.get(orthanc_id)
        if watched is None or watched["last_update"] != last_update:
            self.receiving[orthanc_id] = {"last_update": last_update, "seen": self._clock()}

    def unwatch(self, orthanc_id):
        self.receiving.pop(orthanc_id, None)

    def quiet(self, stable_age):
        """Watched studies with no new LastUpdate seen for `stable_age` s."""
        now = self._clock()
        return [i for i, w in self.receiving.items() if now - w["seen"] >= stable_age]

    def next_quiet(self, stable_age):
        """When the next watched study may be quiet (None: none watched)."""
        return min((w["seen"] + stable_age for w in self.receiving.values()), default=None)

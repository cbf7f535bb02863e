"""The worker that pushes Orthanc's studies to GNU Health.

Plain Python with injected dependencies:
- `orthanc`: get(path) -> parsed JSON or None on 404, get_cursor() -> int,
  set_cursor(int) (the cursor lives in an Orthanc global property, so it
  survives restarts; each node of a cluster keeps its own), get_state() ->
  dict, set_state(dict) (a second global property: pending.py),
  stable_age() -> Orthanc's StableAge in seconds,
  store_instance(bytes) -> the answer of POST /instances (uploads.py);
- `gnuhealth`: push(batch), raising GnuHealthUnavailable or StudyRejected,
  the lists of audit.py, and claim_uploads/finish_upload (uploads.py);
- `clock`: seconds since the epoch (time.time), for back-off and status.

What to push comes from Orthanc's /changes log, read from the persisted
cursor (change_log.py). The cursor only moves after GNU Health accepted every study of the
page, so a crash or an outage replays the page (pushes are idempotent).
When the change numbers jump, the cursor waits up to ChangeGapWait seconds
at the gap for the missing numbers (a PostgreSQL cluster can commit N+1
before N), then moves on (with SQLite a deleted resource's changes go with
it, so some gaps are for good).

A study is pushed as still receiving until its StableStudy change; the
worker also keeps such studies in the state property, with their
LastUpdate, and pushes one as complete once its LastUpdate did not change
for StableAge seconds of the worker's clock. So a study that was arriving
when Orthanc died (Orthanc's stability timers are in memory: no
StableStudy will come) is complete soon after the restart.

Deletions are not in Orthanc's /changes log with SQLite (its rows go with
the deleted resource), so the OnChange callback notes them
(`note_deleted`); the worker writes them at once into the state property
(pending.py) and clears them only once GNU Health took them. Whatever a
crash, another cluster node or a hand edit still leaves wrong, the
continuous audit (audit.py) finds and repairs.

A batch sent to GNU Health is {"server": {...}, "studies": [study records
from mapping.map_study], "deleted": [{"level", "orthanc_id"}]}. Deletions
are sent only for resources Orthanc still does not have when they are
sent (a study deleted then received again stays available).
"""
import threading
import time
import traceback

from . import changes, dicom_text, mapping, viewers
from .audit import Audit
from .change_log import ChangeLog
from .errors import GnuHealthUnavailable, StudyRejected
from .on_demand import OnDemand
from .pending import Pending, back_off_delay, iso
from .resync import Resync
from .status import Status
from .uploads import Uploads


# Deletions per RPC call; GNU Health marks them in slices.
DELETIONS_PER_PUSH = 500
_PATHS = {"study": "studies", "series": "series", "instance": "instances"}
# Seconds beyond StableAge before the worker declares a quiet study complete
# itself: Orthanc checks stability about once a second, so its own
# StableStudy comes first whenever Orthanc did not restart meanwhile.
STABLE_GRACE = 5


class SyncWorker:
    def __init__(self, settings, orthanc, gnuhealth, log, clock=time.time, text=None,
                 after_step=None):
        self._settings = settings
        self._orthanc = orthanc
        self._gnuhealth = gnuhealth
        self._log = log  # log(level, line), level in "info", "warning", "error"
        self._clock = clock
        # Where Orthanc misdecodes text (ISO 2022), pydicom reads it: dicom_text.py.
        self._text = text or dicom_text.TextReader(orthanc.get_raw, log)
        # Called in the worker thread after each step (the bridge's metrics).
        self._after_step = after_step or (lambda: None)
        self._viewers = None  # installed viewer names, read from Orthanc on first run
        self._conflicts = {}  # Orthanc study id -> GNU Health's conflict note
        self.status = Status()
        self._wake = threading.Event()  # something changed in Orthanc
        self._urgent = threading.Event()  # a user asked for something, or stop
        self._stopping = threading.Event()
        self._on_demand = OnDemand(wake=self._wake_urgently)
        self._pending = Pending(settings, orthanc, self.status, log, clock)
        self._audit = Audit(settings, orthanc, gnuhealth, self.status, log, clock, self)
        self._changes = ChangeLog(settings, orthanc, self.status, log, clock,
                                  on_restart=self._audit.restart)
        self._quiet_after = None  # StableAge + STABLE_GRACE, read at the first run
        self._failures = 0  # consecutive cycles that could not reach GNU Health
        self._next_attempt = 0.0
        self._uploads = Uploads(settings, orthanc, gnuhealth, self.status, log, clock)
        self._resync = Resync(settings, orthanc, self.status, log,
                              on_finished=lambda: self._audit.restart("resync"))

    # ---- called from Orthanc's threads (cheap, no I/O) ----

    def wake(self):
        self._wake.set()

    def note_deleted(self, resource_type, orthanc_id):
        """`resource_type`: "Study", "Series" or "Instance" (others ignored)."""
        gone = changes.deletion(resource_type, orthanc_id)
        if gone:
            self._pending.note_deleted(gone)
            self._wake.set()

    def stop(self):
        self._stopping.set()
        self._wake_urgently()

    def start_resync(self):
        """Begin re-pushing the whole archive; False if one is running."""
        started = self._resync.start()
        if started:
            self._wake_urgently()
        return started

    def request_sync(self, orthanc_id, timeout):
        """Ask the worker thread to push one study now and wait for its answer."""
        return self._on_demand.ask(orthanc_id, timeout)

    def _wake_urgently(self):
        "A user asked for something, or stop: cut even a back-off short."
        self._urgent.set()
        self._wake.set()

    # ---- the worker thread ----

    def run(self):
        """The thread's body: never dies. An error inside a step backs off
        (below); anything escaping the loop itself restarts it, logged."""
        self._log("info", "GNU Health: sync worker started")
        while True:
            try:
                self._loop()
                break
            except BaseException as error:  # noqa: B902 - the worker must not die
                self._log("error", f"GNU Health: the sync worker crashed and is restarted: "
                                   f"{error!r}\n{traceback.format_exc()}")
                if self._stopping.is_set():
                    break
                self._urgent.wait(1.0)
        self._on_demand.cancel()
        self._log("info", "GNU Health: sync worker stopped")

    def _loop(self):
        while not self._stopping.is_set():
            self._wake.clear()
            self._urgent.clear()
            try:
                more = self.run_once()
            except Exception as error:
                self._failures += 1
                delay = back_off_delay(self._settings, self._failures)
                self._next_attempt = self._clock() + delay
                self.status.update(last_error=f"{error!r}", next_attempt_in=delay)
                self._log("error", f"GNU Health: unexpected error in the sync worker, "
                                   f"retrying in {delay:g} s: {error!r}\n"
                                   f"{traceback.format_exc()}")
                more = False
            self._after_step()
            if not more and not self._stopping.is_set():
                self._wait()

    def _wait(self):
        now = self._clock()
        if now < self._next_attempt:
            # Backing off: Orthanc's changes must not cut the pause short,
            # only a user's request (or stop) does.
            self._urgent.wait(min(self._next_attempt - now, self._settings.poll_interval))
        else:
            self._wake.wait(max(0.0, min(self._next_deadline() - now,
                                         self._settings.poll_interval)))

    def _next_deadline(self):
        """When a timer of the worker fires: a quiet receiving study, the
        next audit page, the next look for uploads, the end of the wait at
        a gap."""
        times = [self._pending.next_quiet(self._quiet_after or 0), self._audit.next_time(),
                 self._uploads.next_time(), self._changes.gap_deadline()]
        return min([t for t in times if t is not None], default=float("inf"))

    def run_once(self):
        """One step; True when more work is waiting (call again at once)."""
        if self._changes.cursor is None:
            self._viewers = viewers.installed_viewers(self._orthanc.get("/plugins"),
                                                      self._orthanc.ohif_folder())
            self._quiet_after = self._orthanc.stable_age() + STABLE_GRACE
            self._pending.load()
            self._changes.start()
            self._audit.restart("start")
        self._pending.persist_noted()
        self._on_demand.serve(self.sync_study)
        now = self._clock()
        if now < self._next_attempt:
            self.status.update(next_attempt_in=round(self._next_attempt - now, 3))
            return False
        try:
            more = self._push_changes()
            self._complete_quiet_studies()  # first: it may clear a failed study
            self._retry_failed()
            more = self._resync.step(self._push_studies) or more
            if not more and self._audit.due():
                self._audit.step()  # only with the change log drained
            if not more and self._uploads.due():
                more = self._uploads.step()
        except GnuHealthUnavailable as error:
            self._back_off(error)
            return False
        self._failures = 0
        self.status.update(next_attempt_in=None)
        return more

    def status_now(self):
        """The status, with Orthanc's last change read now: `pending` must be
        true when someone looks, which is often while the worker sleeps
        (backing off from a GNU Health outage)."""
        self._changes.last_change_now()
        return self.status.to_json()

    def _back_off(self, error):
        self._failures += 1
        delay = back_off_delay(self._settings, self._failures)
        self._next_attempt = self._clock() + delay
        self.status.update(gnuhealth_reachable=False, last_error=str(error),
                           next_attempt_in=delay)
        self._log("warning", f"GNU Health: {error}; nothing is lost, retrying in {delay:g} s")

    # ---- /changes ----

    def _push_changes(self):
        entries, last, more = self._changes.read()
        work = changes.interpret(entries, self._parent_study)
        self._push_studies(work.dirty_studies, work.receiving)
        deleted = self._pending.add_deleted(work.deleted)
        if deleted:
            # Persisted until sent: an outage here keeps them for the next try.
            self._push_deletions(deleted)
            self._pending.deletions_sent()
        self._pending.save()  # the studies still receiving, before the cursor moves
        self._changes.advance(last)
        return more

    def _parent_study(self, series_id):
        series = self._orthanc.get(f"/series/{series_id}")
        return series.get("ParentStudy") if series else None

    # ---- pushing ----

    def _fetch_study(self, orthanc_id, complete=None):
        """The study record, or None when the study left Orthanc meanwhile.

        `complete`: True/False forces it; None: complete when Orthanc says
        the study is stable and the worker does not watch it as receiving
        (this node's IsStable misses a study another node of a cluster
        receives, and every IsStable is true after a restart)."""
        study = self._orthanc.get(f"/studies/{orthanc_id}")
        if study is None:
            return None
        series = self._orthanc.get(f"/studies/{orthanc_id}/series")
        instances = self._orthanc.get(f"/studies/{orthanc_id}/instances")
        if series is None or instances is None:
            return None
        record = mapping.map_study(study, series, instances,
                                   self._text.study_text(study, instances))
        if complete is None:
            complete = record["complete"] and orthanc_id not in self._pending.receiving
        record["complete"] = complete
        return record

    def _push_studies(self, orthanc_ids, receiving=frozenset()):
        """Fetch and push studies StudiesPerPush at a time (bounded memory).
        Those in `receiving` (their last change is not StableStudy) are
        pushed as not complete and watched; the others are not watched."""
        size = self._settings.studies_per_push
        for start in range(0, len(orthanc_ids), size):
            records = []
            for orthanc_id in orthanc_ids[start:start + size]:
                if orthanc_id not in receiving:
                    self._pending.unwatch(orthanc_id)
                record = self._fetch_study(orthanc_id, False if orthanc_id in receiving
                                           else None)
                if record and orthanc_id in receiving:
                    self._pending.watch(orthanc_id, record["last_update"])
                if record:
                    records.append(record)
            if records:
                self._push_isolating(records)

    def _complete_quiet_studies(self):
        """Push as complete each watched study whose LastUpdate did not
        change for StableAge + STABLE_GRACE seconds: its StableStudy never
        came (Orthanc restarted meanwhile, or the change was skipped)."""
        for orthanc_id in self._pending.quiet(self._quiet_after):
            watched = self._pending.receiving[orthanc_id]
            record = self._fetch_study(orthanc_id, complete=True)
            if record is not None and record["last_update"] != watched["last_update"]:
                self._pending.watch(orthanc_id, record["last_update"])
                continue
            if record is not None:
                self._push_isolating([record])
                self._log("info", f"GNU Health: study {record['study_uid']} (Orthanc "
                                  f"{orthanc_id}) had no new instance for "
                                  f"{self._quiet_after:g} s and no StableStudy; pushed "
                                  f"as complete")
            self._pending.unwatch(orthanc_id)
        self._pending.save()

    def _push_deletions(self, deleted):
        """Tell GNU Health what left Orthanc, in slices; what Orthanc has
        again (deleted then received again) is left out."""
        still_gone = [d for d in deleted
                      if self._orthanc.get(f"/{_PATHS[d['level']]}/{d['orthanc_id']}") is None]
        for start in range(0, len(still_gone), DELETIONS_PER_PUSH):
            chunk = still_gone[start:start + DELETIONS_PER_PUSH]
            try:
                self._push([], chunk)
            except StudyRejected as error:
                self._log("error", f"GNU Health refused to mark {len(chunk)} deleted "
                                   f"resource(s) as gone from the PACS; they stay as they "
                                   f"are in GNU Health: {error}")
            else:
                counts = {}
                for d in chunk:
                    counts[d["level"]] = counts.get(d["level"], 0) + 1
                self._log("info", "GNU Health: marked as deleted from the PACS: " + ", ".join(
                    f"{n} {level}" for level, n in sorted(counts.items())))

    def _push_isolating(self, records):
        """Push a chunk; if GNU Health rejects it, push its studies one by
        one so a single bad study cannot hold back the others."""
        try:
            self._push(records, [])
        except StudyRejected as error:
            if len(records) == 1:
                self._pending.record_failure(records[0], str(error))
                return
            self._log("warning", f"GNU Health rejected a batch of {len(records)} studies "
                                 f"({error}); pushing them one by one")
            for record in records:
                self._push_isolating([record])
        else:
            for record in records:
                self._pending.succeeded(record)

    def _push(self, records, deleted):
        batch = {"server": self._server(), "studies": records, "deleted": deleted}
        started = self._clock()
        try:
            answer = self._gnuhealth.push(batch)
        except StudyRejected:
            self.status.update(gnuhealth_reachable=True)  # it answered
            raise
        now = self._clock()
        self.status.update(gnuhealth_reachable=True, pushes=self.status.get("pushes") + 1,
                           last_push={"at": iso(now), "studies": len(records),
                                      "deleted": len(deleted),
                                      "seconds": round(now - started, 3)})
        self._note_conflicts(records, answer)

    def _note_conflicts(self, records, answer):
        """Keep GNU Health's word on the studies it holds in conflict (a UID
        under two PatientIDs, contradicting evidence), as of their last push,
        so the status says what the Explorer panel says."""
        conflicts = answer.get("conflicts") if isinstance(answer, dict) else None
        if not isinstance(conflicts, dict):
            return  # a health_radiology older than the conflicts answer
        for record in records:
            self._conflicts.pop(record["orthanc_id"], None)
        self._conflicts.update(conflicts)
        self.status.update(conflicts=[{"orthanc_id": orthanc_id, "note": note}
                                      for orthanc_id, note in sorted(self._conflicts.items())])

    def _server(self):
        settings = self._settings
        return {
            "label": settings.server_label,
            "public_url": settings.public_url.rstrip("/"),
            "viewers": self._viewers or [],
            "templates": dict(settings.viewer_templates),
            "accession_issuers": list(settings.local_accession_issuers),
        }

    def _retry_failed(self):
        for orthanc_id in self._pending.due():
            record = self._fetch_study(orthanc_id)
            if record is None:
                self._pending.forget(orthanc_id)
            else:
                self._push_isolating([record])

    # ---- for the audit (audit.py) ----

    def busy(self, orthanc_id):
        """True for studies the worker handles already (receiving, failed)."""
        return orthanc_id in self._pending.receiving or orthanc_id in self._pending.failed

    def watch(self, orthanc_id, last_update):
        self._pending.watch(orthanc_id, last_update)
        self._pending.save()

    def repair(self, orthanc_ids):
        self._push_studies(orthanc_ids)

    def mark_deleted(self, deleted):
        self._push_deletions(deleted)

    # ---- on demand ----

    def sync_study(self, orthanc_id):
        """Push one study now, whatever the back-off; returns what happened."""
        record = self._fetch_study(orthanc_id)
        if record is None:
            return {"orthanc_id": orthanc_id, "result": "not-found"}
        answer = {"orthanc_id": orthanc_id, "study_uid": record["study_uid"]}
        try:
            self._push([record], [])
        except StudyRejected as error:
            self._pending.record_failure(record, str(error))
            return {**answer, "result": "rejected", "reason": str(error)}
        except GnuHealthUnavailable as error:
            self.status.update(gnuhealth_reachable=False, last_error=str(error))
            return {**answer, "result": "unavailable", "reason": str(error)}
        self._pending.succeeded(record)
        return {**answer, "result": "pushed"}

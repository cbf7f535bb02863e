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

Reading and pushing the studies is push.py's (Pusher): it reads a study
still receiving at most once per PollInterval. The worker keeps the loop,
the timers and the back-off. A batch sent to GNU Health is {"server":
{...}, "studies": [study records from mapping.map_study], "deleted":
[{"level", "orthanc_id"}]}. Deletions are sent only for resources Orthanc
still does not have when they are sent (a study deleted then received
again stays available).
"""
import threading
import time
import traceback

from . import changes, dicom_text, viewers
from .audit import Audit
from .change_log import ChangeLog
from .errors import GnuHealthUnavailable
from .on_demand import OnDemand
from .pending import Pending, back_off_delay
from .push import Pusher
from .resync import Resync
from .status import Status
from .uploads import Uploads


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
        # Called in the worker thread after each step (the bridge's metrics).
        self._after_step = after_step or (lambda: None)
        self.status = Status()
        self._wake = threading.Event()  # something changed in Orthanc
        self._urgent = threading.Event()  # a user asked for something, or stop
        self._stopping = threading.Event()
        self._on_demand = OnDemand(wake=self._wake_urgently)
        self._pending = Pending(settings, orthanc, self.status, log, clock)
        # Where Orthanc misdecodes text (ISO 2022), pydicom reads it: dicom_text.py.
        self._pusher = Pusher(settings, orthanc, gnuhealth, self._pending, self.status, log,
                              clock, text or dicom_text.TextReader(orthanc.get_raw, log))
        self._audit = Audit(settings, orthanc, gnuhealth, self.status, log, clock, self)
        self._changes = ChangeLog(settings, orthanc, self.status, log, clock,
                                  on_restart=self._audit.restart)
        self._quiet_after = None  # StableAge + STABLE_GRACE, read at the first run
        self._failures = 0  # consecutive cycles that could not reach GNU Health
        self._next_attempt = 0.0
        self._uploads = Uploads(settings, orthanc, gnuhealth, self.status, log, clock)
        self._resync = Resync(settings, orthanc, self.status, log,
                              on_finished=lambda: self._audit.restart("resync"),
                              deletions_seen=self._pending.deletions_seen)

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
        """When a timer of the worker fires: a quiet receiving study, a
        deferred read of a receiving study, the next audit page, the next
        look for uploads, the end of the wait at a gap."""
        times = [self._pending.next_quiet(self._quiet_after or 0), self._pusher.next_time(),
                 self._audit.next_time(), self._uploads.next_time(),
                 self._changes.gap_deadline()]
        return min([t for t in times if t is not None], default=float("inf"))

    def run_once(self):
        """One step; True when more work is waiting (call again at once)."""
        if self._changes.cursor is None:
            self._pusher.viewers = viewers.installed_viewers(self._orthanc.get("/plugins"),
                                                             self._orthanc.ohif_folder())
            self._quiet_after = self._orthanc.stable_age() + STABLE_GRACE
            self._pending.load()
            self._changes.start()
            self._audit.restart("start")
        self._pending.persist_noted()
        self._on_demand.serve(self._pusher.sync_study)
        now = self._clock()
        if now < self._next_attempt:
            self.status.update(next_attempt_in=round(self._next_attempt - now, 3))
            return False
        try:
            more = self._push_changes()
            self._pusher.complete_quiet(self._quiet_after)  # first: it may clear a failure
            self._pusher.push_deferred()
            self._pusher.retry_failed()
            more = self._resync.step(self._pusher.read_studies,
                                     self._pusher.push_read) or more
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
        self._pusher.push_studies(work.dirty_studies, work.receiving, work.new)
        deleted = self._pending.add_deleted(work.deleted)
        if deleted:
            # Persisted until sent: an outage here keeps them for the next try.
            self._pusher.push_deletions(deleted)
            self._pending.deletions_sent()
        self._pending.save()  # the studies still receiving, before the cursor moves
        self._changes.advance(last)
        return more

    def _parent_study(self, series_id):
        series = self._orthanc.get(f"/series/{series_id}")
        return series.get("ParentStudy") if series else None

    # ---- for the audit (audit.py) ----

    def busy(self, orthanc_id):
        """True for studies the worker handles already (receiving, failed)."""
        return orthanc_id in self._pending.receiving or orthanc_id in self._pending.failed

    def watch(self, orthanc_id, last_update):
        self._pending.watch(orthanc_id, last_update)
        self._pending.save()

    def repair(self, orthanc_ids):
        self._pusher.push_studies(orthanc_ids)

    def mark_deleted(self, deleted):
        self._pusher.push_deletions(deleted)

    # ---- on demand ----

    def sync_study(self, orthanc_id):
        """Push one study now, whatever the back-off; returns what happened."""
        return self._pusher.sync_study(orthanc_id)

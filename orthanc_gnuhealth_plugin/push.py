"""Reading studies from Orthanc and pushing them to GNU Health.

The sync worker (sync.py) decides what to push and when; the Pusher reads
each study (/studies/{id}, /series, /instances), maps it (mapping.py),
sends it in chunks of StudiesPerPush, isolates a study GNU Health rejects
(pending.py keeps it with its own back-off), and keeps GNU Health's word
on conflicts for the status.

A study still receiving is read at most once per PollInterval: the first
sight of a study is pushed at once (first-visible is what users wait for),
later NewSeries / StableSeries changes within PollInterval of the last
read only mark it for a read when that interval is over (`push_deferred`).
Its end (StableStudy, or the quiet timer) is pushed at once. A deferred
read is not persisted: after a crash the study is still in the receiving
list (pending.py), so it is completed all the same.

Injected: `orthanc.get`, `gnuhealth.push`, `pending` (pending.Pending),
`status`, `log`, `clock`, `text` (dicom_text.TextReader).
"""
from . import mapping
from .errors import GnuHealthUnavailable, StudyRejected
from .pending import iso

# Deletions per RPC call; GNU Health marks them in slices.
DELETIONS_PER_PUSH = 500
_PATHS = {"study": "studies", "series": "series", "instance": "instances"}


class Pusher:
    def __init__(self, settings, orthanc, gnuhealth, pending, status, log, clock, text):
        self._settings = settings
        self._orthanc = orthanc
        self._gnuhealth = gnuhealth
        self._pending = pending
        self.status = status
        self._log = log
        self._clock = clock
        self._text = text
        self.viewers = None  # installed viewer names, set by the worker at its start
        self._conflicts = {}  # Orthanc study id -> GNU Health's conflict note
        self._read_at = {}  # receiving study -> the clock when it was last read
        self._deferred = {}  # receiving study -> when its deferred read is due

    # ---- reading ----

    def fetch_study(self, orthanc_id, complete=None):
        """The study record, or None when the study left Orthanc meanwhile.

        `complete`: True/False forces it; None: complete when Orthanc says
        the study is stable and the worker does not watch it as receiving
        (this node's IsStable misses a study another node of a cluster
        receives, and every IsStable is true after a restart)."""
        record = self._map_study(orthanc_id)
        if record is not None:
            if complete is None:
                complete = record["complete"] and orthanc_id not in self._pending.receiving
            record["complete"] = complete
        return record

    def _map_study(self, orthanc_id):
        "The record as Orthanc has the study (complete: IsStable), or None."
        study = self._orthanc.get(f"/studies/{orthanc_id}")
        if study is None:
            return None
        series = self._orthanc.get(f"/studies/{orthanc_id}/series")
        instances = self._orthanc.get(f"/studies/{orthanc_id}/instances")
        if series is None or instances is None:
            return None
        return mapping.map_study(study, series, instances,
                                 self._text.study_text(study, instances))

    def read_studies(self, orthanc_ids):
        """The records of studies to push not watched (complete: IsStable),
        None for those gone. Reads Orthanc only: the resync calls it from a
        second thread while the worker's thread pushes (resync.py)."""
        return [self._map_study(i) for i in orthanc_ids]

    def push_read(self, orthanc_ids, records):
        "Push the records `read_studies` gave for `orthanc_ids`, unwatched."
        for orthanc_id in orthanc_ids:
            self._forget(orthanc_id)
        records = [r for r in records if r]
        size = self._settings.studies_per_push
        for start in range(0, len(records), size):
            self.push_isolating(records[start:start + size])

    # ---- studies ----

    def push_studies(self, orthanc_ids, receiving=frozenset(), new=frozenset()):
        """Fetch and push studies StudiesPerPush at a time (bounded memory).
        Those in `receiving` (their last change is not StableStudy) are
        pushed as not complete and watched, unless read less than
        PollInterval ago and not `new` (NewStudy: a study first seen, or
        seen again after Orthanc's database was replaced): those wait for
        `push_deferred`. The others are not watched, and go first."""
        orthanc_ids = [i for i in orthanc_ids
                       if not (i in receiving and i not in new and self._defer(i))]
        # Complete studies first, in chunks of their own when there are
        # enough of them: a user waits for "complete" (StableStudy), and a
        # chunk is one transaction in GNU Health.
        orthanc_ids.sort(key=lambda i: i in receiving)
        size = self._settings.studies_per_push
        for start in range(0, len(orthanc_ids), size):
            records = []
            for orthanc_id in orthanc_ids[start:start + size]:
                record = self._read(orthanc_id, orthanc_id in receiving)
                if record:
                    records.append(record)
            if records:
                self.push_isolating(records)

    def _defer(self, orthanc_id):
        """True when a receiving study was read less than PollInterval ago:
        its next read waits for `push_deferred`."""
        read_at = self._read_at.get(orthanc_id)
        if read_at is None or orthanc_id not in self._pending.receiving:
            return False
        due = read_at + self._settings.poll_interval
        if self._clock() >= due:
            return False
        self._deferred[orthanc_id] = due
        return True

    def _read(self, orthanc_id, receiving):
        if not receiving:
            self._forget(orthanc_id)
            return self.fetch_study(orthanc_id)
        self._deferred.pop(orthanc_id, None)
        self._read_at[orthanc_id] = self._clock()
        record = self.fetch_study(orthanc_id, False)
        if record:
            self._pending.watch(orthanc_id, record["last_update"])
        return record

    def _forget(self, orthanc_id):
        "The study is pushed as Orthanc has it: no longer watched as receiving."
        self._deferred.pop(orthanc_id, None)
        self._read_at.pop(orthanc_id, None)
        self._pending.unwatch(orthanc_id)

    def push_deferred(self):
        """Read and push the receiving studies whose deferred read is due;
        forget those no longer receiving (completed meanwhile)."""
        now = self._clock()
        self._read_at = {i: t for i, t in self._read_at.items() if i in self._pending.receiving}
        self._deferred = {i: t for i, t in self._deferred.items() if i in self._read_at}
        due = [i for i, t in self._deferred.items() if t <= now]
        self.push_studies(due, receiving=set(due))

    def next_time(self):
        "When the next deferred read is due (None: none)."
        return min(self._deferred.values(), default=None)

    def complete_quiet(self, quiet_after):
        """Push as complete each watched study whose LastUpdate did not
        change for `quiet_after` seconds: its StableStudy never came
        (Orthanc restarted meanwhile, or the change was skipped)."""
        for orthanc_id in self._pending.quiet(quiet_after):
            watched = self._pending.receiving[orthanc_id]
            record = self.fetch_study(orthanc_id, complete=True)
            if record is not None and record["last_update"] != watched["last_update"]:
                self._pending.watch(orthanc_id, record["last_update"])
                continue
            if record is not None:
                self.push_isolating([record])
                self._log("info", f"GNU Health: study {record['study_uid']} (Orthanc "
                                  f"{orthanc_id}) had no new instance for "
                                  f"{quiet_after:g} s and no StableStudy; pushed "
                                  f"as complete")
            self._pending.unwatch(orthanc_id)
        self._pending.save()

    def retry_failed(self):
        for orthanc_id in self._pending.due():
            record = self.fetch_study(orthanc_id)
            if record is None:
                self._pending.forget(orthanc_id)
            else:
                self.push_isolating([record])

    def push_isolating(self, records):
        """Push a chunk; if GNU Health rejects it, push its studies one by
        one so a single bad study cannot hold back the others."""
        try:
            self.push(records, [])
        except StudyRejected as error:
            if len(records) == 1:
                self._pending.record_failure(records[0], str(error))
                return
            self._log("warning", f"GNU Health rejected a batch of {len(records)} studies "
                                 f"({error}); pushing them one by one")
            for record in records:
                self.push_isolating([record])
        else:
            for record in records:
                self._pending.succeeded(record)

    # ---- deletions ----

    def push_deletions(self, deleted):
        """Tell GNU Health what left Orthanc, in slices; what Orthanc has
        again (deleted then received again) is left out."""
        still_gone = [d for d in deleted
                      if self._orthanc.get(f"/{_PATHS[d['level']]}/{d['orthanc_id']}") is None]
        for start in range(0, len(still_gone), DELETIONS_PER_PUSH):
            chunk = still_gone[start:start + DELETIONS_PER_PUSH]
            try:
                self.push([], chunk)
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

    # ---- one RPC ----

    def push(self, records, deleted):
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
            "viewers": self.viewers or [],
            "templates": dict(settings.viewer_templates),
            "accession_issuers": list(settings.local_accession_issuers),
        }

    # ---- on demand ----

    def sync_study(self, orthanc_id):
        """Push one study now, whatever the back-off; returns what happened."""
        record = self.fetch_study(orthanc_id)
        if record is None:
            return {"orthanc_id": orthanc_id, "result": "not-found"}
        answer = {"orthanc_id": orthanc_id, "study_uid": record["study_uid"]}
        try:
            self.push([record], [])
        except StudyRejected as error:
            self._pending.record_failure(record, str(error))
            return {**answer, "result": "rejected", "reason": str(error)}
        except GnuHealthUnavailable as error:
            self.status.update(gnuhealth_reachable=False, last_error=str(error))
            return {**answer, "result": "unavailable", "reason": str(error)}
        self._pending.succeeded(record)
        return {**answer, "result": "pushed"}

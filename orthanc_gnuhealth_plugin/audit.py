"""The continuous audit (anti-entropy): GNU Health converges to what Orthanc holds.

Whatever path led GNU Health astray (a crash between two changes, a change
skipped on a cluster, a series deleted while the plugin was stopped, a row
edited or removed in GNU Health), comparing the two sides finds it. A pass
has two halves, one page at a time, one page every AuditInterval seconds,
and only while the change log is drained, so it never competes with ingest:

1. Orthanc's studies (`/studies?expand&since=&limit=`, with each study's
   `/statistics`) against GNU Health's summary of the same page (one
   `audit_summary` RPC): series count, instance count and LastUpdate. A
   study that differs, or that GNU Health lacks or marks deleted, is pushed
   again. A study GNU Health still shows as receiving is handed to the
   worker's StableAge timer.
2. GNU Health's available studies of this server (`available_studies`)
   against Orthanc: those Orthanc no longer has are marked deleted.

Orthanc pages by offset: a study deleted during a pass shifts the later
ones back and one may be skipped; the next pass sees it. Passes follow each
other without end; `last_full_pass` says when the last one ended.
"""
from .errors import NotSupported
from .pending import iso

_FIELDS = (("series", "CountSeries"), ("instances", "CountInstances"))


def differences(orthanc_study, statistics, summary):
    """What GNU Health's `summary` of a study (None: absent) gets wrong
    about Orthanc's, as short phrases; [] when they agree."""
    if summary is None:
        return ["not in GNU Health"]
    found = []
    if summary.get("pacs_state") == "deleted":
        found.append("marked deleted in GNU Health")
    for name, key in _FIELDS:
        if summary.get(name) != statistics.get(key):
            found.append(f"{name}: {summary.get(name)} in GNU Health, "
                         f"{statistics.get(key)} in Orthanc")
    if summary.get("last_update") != orthanc_study.get("LastUpdate"):
        found.append(f"LastUpdate: {summary.get('last_update')} in GNU Health, "
                     f"{orthanc_study.get('LastUpdate')} in Orthanc")
    return found


class Audit:
    """One page per `step()`; the worker calls it when `due()`.

    `repair(orthanc_ids)` pushes studies again; `mark_deleted(list)` sends
    {"level": "study", "orthanc_id"} deletions; `watch(orthanc_id,
    last_update)` hands a study GNU Health shows as receiving to the
    StableAge timer; `busy(orthanc_id)` is true for studies the worker
    handles already (receiving, failed): they are not compared.
    """

    def __init__(self, settings, orthanc, gnuhealth, status, log, clock, worker):
        self._settings = settings
        self._orthanc = orthanc
        self._gnuhealth = gnuhealth
        self._status = status
        self._log = log
        self._clock = clock
        self._worker = worker
        self._enabled = settings.audit_interval > 0
        self._compare = True  # False once GNU Health lacks audit_summary
        self._list = True  # False once the sync account may not list studies
        self._next = 0.0  # clock time of the next page
        self._pass = None  # {"half", "offset", "after", "checked", "repaired"}
        self._checked = self._repaired = 0
        self._last_full_pass = None

    def restart(self, why):
        """Begin a new pass now (start, change-log reset, end of a resync)."""
        if not self._enabled:
            return
        self._pass = {"half": 1 if self._compare else 2, "offset": 0, "after": "",
                      "checked": 0, "repaired": 0, "why": why, "started": self._clock()}
        self._next = self._clock()
        self._publish()

    def next_time(self):
        """Clock time of the next page, or None when the audit is off."""
        return self._next if self._enabled and (self._compare or self._list) else None

    def due(self):
        when = self.next_time()
        return when is not None and self._clock() >= when

    def step(self):
        """Audit one page; GnuHealthUnavailable leaves the page for the next try."""
        if self._pass is None:
            self.restart("continuous")
        state = self._pass
        if state["half"] == 1:
            done = self._orthanc_page(state)
        else:
            done = self._gnuhealth_page(state)
        if done:
            self._end_half(state)
        self._next = self._clock() + self._settings.audit_interval
        self._publish()

    # ---- Orthanc -> GNU Health ----

    def _orthanc_page(self, state):
        size = self._settings.audit_page_size
        studies = self._orthanc.get(
            f"/studies?expand&since={state['offset']}&limit={size}") or []
        candidates = [s for s in studies if not self._worker.busy(s["ID"])]
        if candidates:
            try:
                summary = self._gnuhealth.audit_summary(
                    self._settings.server_label, [s["ID"] for s in candidates])
            except NotSupported as error:
                self._compare = False
                self._log("warning", f"GNU Health: the audit cannot compare studies, GNU "
                                     f"Health has no audit_summary ({error}); update "
                                     f"health_radiology. Only deletions are compared.")
                state["half"] = 2
                return False
            self._compare_page(state, candidates, summary)
        state["offset"] += len(studies)
        state["checked"] += len(studies)
        self._checked += len(studies)
        return len(studies) < size

    def _compare_page(self, state, studies, summary):
        repairs = []
        for study in studies:
            statistics = self._orthanc.get(f"/studies/{study['ID']}/statistics")
            if statistics is None:
                continue  # deleted meanwhile
            theirs = summary.get(study["ID"])
            found = differences(study, statistics, theirs)
            if found:
                repairs.append((study, found))
            elif theirs.get("reception") == "receiving":
                self._worker.watch(study["ID"], study.get("LastUpdate"))
        if repairs:
            self._worker.repair([study["ID"] for study, _ in repairs])
            for study, found in repairs:
                uid = (study.get("MainDicomTags") or {}).get("StudyInstanceUID")
                self._log("warning", f"GNU Health audit: repaired study {uid} (Orthanc "
                                     f"{study['ID']}): {'; '.join(found)}")
            state["repaired"] += len(repairs)
            self._repaired += len(repairs)

    # ---- GNU Health -> Orthanc ----

    def _gnuhealth_page(self, state):
        size = self._settings.audit_page_size
        try:
            ids = self._gnuhealth.available_studies(
                self._settings.server_label, state["after"], size)
        except NotSupported as error:
            self._list = False
            self._log("warning", f"GNU Health: cannot list its studies to find deletions "
                                 f"missed while Orthanc was down ({error}); only deletions "
                                 f"seen live are sent")
            return True
        gone = [i for i in ids if self._orthanc.get(f"/studies/{i}") is None]
        state["checked"] += len(ids)
        self._checked += len(ids)
        if gone:
            self._worker.mark_deleted([{"level": "study", "orthanc_id": i} for i in gone])
            for orthanc_id in gone:
                self._log("warning", f"GNU Health audit: repaired study (Orthanc "
                                     f"{orthanc_id}): available in GNU Health, no longer in "
                                     f"Orthanc; marked deleted from the PACS")
            state["repaired"] += len(gone)
            self._repaired += len(gone)
        if ids:
            state["after"] = ids[-1]
        return len(ids) < size

    def _end_half(self, state):
        if state["half"] == 1 and self._list:
            state["half"] = 2
            return
        self._pass = None
        self._last_full_pass = iso(self._clock())
        if state["repaired"] or state["why"] != "continuous":
            self._log("info", f"GNU Health audit: pass ({state['why']}) checked "
                              f"{state['checked']} studies in "
                              f"{self._clock() - state['started']:.0f} s, repaired "
                              f"{state['repaired']}")

    def _publish(self):
        self._status.update(audit={
            "running": self._pass is not None, "checked": self._checked,
            "repaired": self._repaired, "last_full_pass": self._last_full_pass,
            "supported": self._compare})

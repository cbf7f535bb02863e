"""In-memory stand-ins for Orthanc's REST API and for GNU Health.

The JSON shapes are those of Orthanc 1.10.1, checked against the real
server (storescu of pydicom's CT_small.dcm, then GET /changes,
/studies/{id}, /studies/{id}/series, /studies/{id}/instances).
"""
import hashlib
import io
import json
import re
import threading
import time
from urllib.parse import parse_qs, urlparse

from orthanc_gnuhealth_plugin.config import Settings, UploadSettings
from orthanc_gnuhealth_plugin.errors import GnuHealthUnavailable, NotSupported, StudyRejected

DATE = "20261128T152119"


def orthanc_id(*parts):
    """Orthanc's public ids: a SHA-1 written as five groups of 8 hex digits."""
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return "-".join(digest[i:i + 8] for i in range(0, 40, 8))


def settings(**overrides):
    # No wait at gaps in the change log (the fake deletes changes with their
    # resources, as Orthanc does with SQLite), no audit and no uploads, unless
    # a test asks.
    values = dict(tryton_password="secret", batch_size=100, studies_per_push=20,
                  retry_min_delay=1.0, retry_max_delay=60.0, poll_interval=0.05,
                  change_gap_wait=0, audit_interval=0,
                  uploads=UploadSettings(interval=0))
    values.update(overrides)
    return Settings(**values)


class FakeClock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class FakeOrthanc:
    """The sync worker's `orthanc` adapter over an in-memory archive."""

    def __init__(self, plugins=("explorer.js", "python", "web-viewer")):
        self.patients = {}
        self.studies = {}
        self.series = {}
        self.instances = {}
        self.changes = []
        self.last_seq = 0
        self.cursor_property = ""
        self.cursor_writes = []
        self.state_property = ""  # JSON text, as Orthanc stores it
        self.state_writes = 0
        self.plugins = list(plugins)
        self.requests = []
        # instance id -> {"0008-0005": b"ISO_IR 100", ...}: what
        # /instances/{id}/content/{tag} answers (raw bytes); absent: 404.
        self.raw_tags = {}
        # True: answer as a cluster node that did not receive the instances.
        # Orthanc keeps IsStable in each node's memory, for its own receptions,
        # so on the other nodes every study looks stable.
        self.other_node = False
        self.stable_age_seconds = 60  # Orthanc's StableAge
        self.ohif_folder_path = None  # ServeFolders' "/ohif" folder
        self._updates = 0  # LastUpdate changes with every instance stored
        self.stored_files = []  # the datasets POSTed to /instances

    # ---- building the archive, like C-STORE would ----

    def store(self, study_uid, series_uid, sop_uid, patient_id="P1", modality="CT",
              study_tags=None, series_tags=None, instance_tags=None, patient_tags=None):
        """Store one instance; returns its study's Orthanc id."""
        patient = orthanc_id(patient_id)
        study = orthanc_id(patient_id, study_uid)
        series = orthanc_id(patient_id, study_uid, series_uid)
        instance = orthanc_id(patient_id, study_uid, series_uid, sop_uid)
        new = []
        if instance not in self.instances:
            new.append(("NewInstance", "Instance", instance, "instances"))
        if series not in self.series:
            new.append(("NewSeries", "Series", series, "series"))
            self.series[series] = {
                "ExpectedNumberOfInstances": None, "ID": series, "Instances": [],
                "IsStable": False, "LastUpdate": DATE,
                "MainDicomTags": {"Modality": modality, "SeriesInstanceUID": series_uid,
                                  "SeriesNumber": "1", **(series_tags or {})},
                "ParentStudy": study, "Status": "Unknown", "Type": "Series"}
        if study not in self.studies:
            new.append(("NewStudy", "Study", study, "studies"))
            self.studies[study] = {
                "ID": study, "IsStable": False, "LastUpdate": DATE,
                "MainDicomTags": {"AccessionNumber": "", "StudyDate": "20040119",
                                  "StudyDescription": "e+1", "StudyID": "1CT1",
                                  "StudyInstanceUID": study_uid, "StudyTime": "072730",
                                  **(study_tags or {})},
                "ParentPatient": patient,
                "PatientMainDicomTags": {"PatientBirthDate": "", "PatientID": patient_id,
                                         "PatientName": "Doe^John", "PatientSex": "O",
                                         **(patient_tags or {})},
                "Series": [], "Type": "Study"}
        if patient not in self.patients:
            new.append(("NewPatient", "Patient", patient, "patients"))
            self.patients[patient] = {"ID": patient, "Studies": []}
        if instance not in self.instances:
            self._updates += 1
            self.studies[study]["LastUpdate"] = f"20261128T{self._updates:06d}"
            self.instances[instance] = {
                "FileSize": 39068, "FileUuid": "65eb387a-1d29-4a14-882f-38f437056511",
                "ID": instance, "IndexInSeries": len(self.series[series]["Instances"]) + 1,
                "MainDicomTags": {"InstanceNumber": str(len(self.series[series]["Instances"]) + 1),
                                  "SOPInstanceUID": sop_uid, **(instance_tags or {})},
                "ParentSeries": series, "Type": "Instance"}
            self.series[series]["Instances"].append(instance)
            self.series[series]["IsStable"] = False
            self.studies[study]["IsStable"] = False
        if series not in self.studies[study]["Series"]:
            self.studies[study]["Series"].append(series)
        if study not in self.patients[patient]["Studies"]:
            self.patients[patient]["Studies"].append(study)
        for change, level, resource_id, path in new:
            self._log(change, level, resource_id, path)
        return study

    def store_instance(self, data):
        """POST /instances: the DICOM file `data`, as Orthanc answers it."""
        import pydicom  # only the upload tests store files
        ds = pydicom.dcmread(io.BytesIO(data))
        before = len(self.instances)
        study = self.store(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                           patient_id=ds.PatientID)
        self.stored_files.append(ds)
        return {"ParentStudy": study,
                "Status": "Success" if len(self.instances) > before else "AlreadyStored"}

    def stabilize(self):
        """What Orthanc does StableAge seconds after the last instance."""
        for series in self.series.values():
            if not series["IsStable"]:
                series["IsStable"] = True
                self._log("StableSeries", "Series", series["ID"], "series")
        for study in self.studies.values():
            if not study["IsStable"]:
                study["IsStable"] = True
                self._log("StableStudy", "Study", study["ID"], "studies")

    def delete_study(self, study_id):
        """Delete like Orthanc with SQLite: the resources' rows in the change
        log go too (ON DELETE CASCADE). Returns the deleted (level, id)
        pairs, as the OnChange callback would see them."""
        study = self.studies.pop(study_id)
        gone = [("Study", study_id)]
        for series_id in study["Series"]:
            series = self.series.pop(series_id)
            gone.append(("Series", series_id))
            for instance_id in series["Instances"]:
                del self.instances[instance_id]
                gone.append(("Instance", instance_id))
        ids = {resource_id for _, resource_id in gone}
        self.changes = [c for c in self.changes if c["ID"] not in ids]
        return gone

    def delete_series(self, series_id):
        """Delete one series (the study stays), its changes with it."""
        series = self.series.pop(series_id)
        self.studies[series["ParentStudy"]]["Series"].remove(series_id)
        for instance_id in series["Instances"]:
            del self.instances[instance_id]
        ids = {series_id, *series["Instances"]}
        self.changes = [c for c in self.changes if c["ID"] not in ids]

    def replace_database(self):
        """A new, empty Orthanc database (restored backup, new index)."""
        self.__init__(self.plugins)

    def _log(self, change, level, resource_id, path):
        self.last_seq += 1
        self.changes.append({"ChangeType": change, "Date": DATE, "ID": resource_id,
                             "Path": f"/{path}/{resource_id}", "ResourceType": level,
                             "Seq": self.last_seq})

    # ---- the adapter interface ----

    def get_cursor(self):
        return int(self.cursor_property) if self.cursor_property else 0

    def set_cursor(self, cursor):
        self.cursor_writes.append(cursor)
        self.cursor_property = str(cursor)

    def ohif_folder(self):
        return self.ohif_folder_path

    def stable_age(self):
        return self.stable_age_seconds

    def get_state(self):
        return json.loads(self.state_property) if self.state_property else {}

    def set_state(self, state):
        self.state_writes += 1
        self.state_property = json.dumps(state)

    def get_raw(self, path):
        """The raw tags of `raw_tags`; any other path as JSON bytes."""
        match = re.fullmatch(r"/instances/([^/]+)/content/(.+)", path)
        if match is None:
            answer = self.get(path)
            return None if answer is None else json.dumps(answer).encode()
        self.requests.append(path)
        tags = self.raw_tags.get(match.group(1), {})
        listing = sorted({t[len(match.group(2)) + 1:].split("/")[0] for t in tags
                          if t.startswith(match.group(2) + "/")})
        if match.group(2) in tags:
            return tags[match.group(2)]
        return json.dumps(listing).encode() if listing else None

    def get(self, path):
        self.requests.append(path)
        url = urlparse(path)
        query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if url.path == "/changes":
            return self._changes(query)
        if url.path == "/statistics":
            return {"CountStudies": len(self.studies), "CountSeries": len(self.series),
                    "CountInstances": len(self.instances)}
        if url.path == "/plugins":
            return list(self.plugins)
        if url.path == "/system":
            return {"Name": "orthanc", "HttpPort": 8042}
        if url.path == "/studies":
            ids = sorted(self.studies)
            since, limit = int(query.get("since", 0)), int(query.get("limit", 0))
            ids = ids[since:since + limit] if limit else ids
            return [self.get(f"/studies/{i}") for i in ids] if "expand" in query else ids
        match = re.fullmatch(
            r"/(studies|series|instances)/([^/]+)(?:/(series|instances|statistics))?", url.path)
        if not match:
            raise AssertionError(f"the fake Orthanc does not serve {path}")
        level, resource_id, children = match.groups()
        if level == "instances":
            return self.instances.get(resource_id)
        if level == "series":
            return self.series.get(resource_id)
        study = self.studies.get(resource_id)
        if study is None:
            return None
        if children is None:
            return {**study, "IsStable": True} if self.other_node else study
        series = [self.series[i] for i in study["Series"]]
        if children == "statistics":
            return {"CountSeries": len(series),
                    "CountInstances": sum(len(s["Instances"]) for s in series)}
        if children == "series":
            return series
        return [self.instances[i] for s in series for i in s["Instances"]]

    def _changes(self, query):
        if "last" in query:
            return {"Changes": self.changes[-1:], "Done": True, "Last": self.last_seq}
        since, limit = int(query.get("since", 0)), int(query.get("limit", 100))
        after = [c for c in self.changes if c["Seq"] > since]
        page = after[:limit]
        last = page[-1]["Seq"] if page else self.last_seq
        return {"Changes": page, "Done": len(after) <= limit, "Last": last}


class FakeGnuHealth:
    """Records the batches; can be unreachable or refuse given study UIDs."""

    def __init__(self):
        self.batches = []
        self.unreachable = False
        self.rejected_uids = set()
        self.calls = 0
        self.pacs_state = {}  # Orthanc study id -> "available" / "deleted"
        self.records = {}  # Orthanc study id -> the study record last pushed
        self.can_list = True
        self.can_summarize = True  # False: a GNU Health without audit_summary
        self.summaries = []  # the ids of each audit_summary call
        self.orders = []  # what worklist_orders answers
        self.conflicts = {}  # Orthanc study id -> note: what push answers in "conflicts"
        self.uploads = []  # what claim_uploads hands out, in order
        self.claims = []  # the node of each claim_uploads call
        self.finished = {}  # upload id -> the result finish_upload got

    def open_imaging_orders(self, states):
        if self.unreachable:
            raise GnuHealthUnavailable("GNU Health at http://localhost:8000/ is unreachable")
        return [o for o in self.orders if o["state"] in states]

    def push(self, batch):
        self.calls += 1
        if self.unreachable:
            raise GnuHealthUnavailable("GNU Health at http://localhost:8000/ is unreachable")
        bad = [s["study_uid"] for s in batch["studies"] if s["study_uid"] in self.rejected_uids]
        if bad:
            raise StudyRejected(f"UserError: study {bad[0]} has no valid patient")
        self.batches.append(batch)
        for study in batch["studies"]:
            self.pacs_state[study["orthanc_id"]] = "available"
            self.records[study["orthanc_id"]] = study
        for gone in batch["deleted"]:
            if gone["level"] == "study" and gone["orthanc_id"] in self.pacs_state:
                self.pacs_state[gone["orthanc_id"]] = "deleted"
        return {"studies": {s["orthanc_id"]: n for n, s in enumerate(batch["studies"], 1)},
                "conflicts": dict(self.conflicts)}

    def available_studies(self, label, after, limit):
        if not self.can_list:
            raise NotSupported("no read access to gnuhealth.radiology.study")
        if self.unreachable:
            raise GnuHealthUnavailable("GNU Health at http://localhost:8000/ is unreachable")
        return sorted(i for i, state in self.pacs_state.items()
                      if state == "available" and i > after)[:limit]

    def audit_summary(self, label, orthanc_ids):
        if not self.can_summarize:
            raise NotSupported("model.gnuhealth.radiology.study.audit_summary refused")
        if self.unreachable:
            raise GnuHealthUnavailable("GNU Health at http://localhost:8000/ is unreachable")
        self.summaries.append(list(orthanc_ids))
        return {i: self.summary(i) for i in orthanc_ids if i in self.records}

    def summary(self, orthanc_id):
        """What health_radiology's audit_summary answers (contract item 5)."""
        record = self.records[orthanc_id]
        return {"series": len(record["series"]),
                "instances": sum(len(s["instances"]) for s in record["series"]),
                "last_update": record["last_update"],
                "reception": "complete" if record["complete"] else "receiving",
                "pacs_state": self.pacs_state[orthanc_id]}

    def claim_uploads(self, node, limit):
        if self.unreachable:
            raise GnuHealthUnavailable("GNU Health at http://localhost:8000/ is unreachable")
        claimed, self.uploads = self.uploads[:limit], self.uploads[limit:]
        self.claims.append(node)
        return claimed

    def finish_upload(self, upload_id, result):
        if self.unreachable:
            raise GnuHealthUnavailable("GNU Health at http://localhost:8000/ is unreachable")
        self.finished[upload_id] = result
        return upload_id

    def pushed_uids(self):
        return [s["study_uid"] for b in self.batches for s in b["studies"]]

    def deleted(self):
        return [d for b in self.batches for d in b["deleted"]]


class Log:
    "The worker's log(level, line), kept to be read by the tests."

    def __init__(self):
        self.lines = []

    def __call__(self, level, line):
        self.lines.append((level, line))

    def at(self, level):
        return [line for lvl, line in self.lines if lvl == level]


def run_worker_until(worker, done, timeout=5, meanwhile=lambda: None):
    """Run the worker in its own thread; call `meanwhile()` once it started,
    poll `done()` for up to `timeout` seconds, then stop the worker and join
    its thread. Returns whether the thread ended."""
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        meanwhile()
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            threading.Event().wait(0.01)
    finally:
        worker.stop()
        thread.join(5)
    return not thread.is_alive()

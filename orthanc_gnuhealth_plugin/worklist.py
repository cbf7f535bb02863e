"""The DICOM Modality Worklist, answered from GNU Health's imaging orders.

A modality's C-FIND must not wait on GNU Health, so a background thread
keeps a cache of the open orders, each already encoded as the DICOM
answer Orthanc sends. A query only filters that cache: cheap keys here
(modality, station, date range, patient, accession, name prefix), the
full DICOM matching by Orthanc itself (orthanc_bridge.py).

Freshness: while GNU Health answers, the cache is at most RefreshInterval
(plus one load) old. When it does not, queries are answered from the last
good cache; once that is older than MaxStaleness, a warning is logged
once per MaxStaleness.
"""
import datetime
import threading
import time
import unicodedata
from dataclasses import dataclass
from io import BytesIO
from typing import Optional

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from .config import WorklistSettings

MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
# SpecificCharacterSet of every answer: UTF-8 says every name as it is.
CHARSET = "ISO_IR 192"


# ---- one order as a DICOM answer ----

@dataclass(frozen=True)
class WorklistItem:
    """An order's encoded answer, with the keys the cheap filter reads."""
    dicom: bytes
    modality: str
    station_aet: str
    date: str
    patient_id: str
    accession: str
    patient_name: str  # folded(), for the name prefix filter


def _person_name(parts):
    return "^".join(part.strip() for part in parts).rstrip("^")


def _local(utc_datetime):
    """Tryton stores UTC; a modality shows the schedule in local time."""
    if utc_datetime is None:
        return None
    return utc_datetime.replace(tzinfo=datetime.timezone.utc).astimezone()


def order_dataset(order, settings: WorklistSettings) -> Dataset:
    """The worklist answer for one order (see tryton_stub_module/worklist.py
    for the keys of `order`)."""
    modality = settings.modalities.get(order["test_type"], order["test_type"])
    station = order.get("station_aet") or settings.station_aets.get(modality, "")
    start = _local(order.get("date"))
    answer = Dataset()
    answer.SpecificCharacterSet = CHARSET
    answer.AccessionNumber = order["accession"][:16]
    answer.PatientName = _person_name(order["patient_name"])
    answer.PatientID = order["patient_id"]
    answer.PatientBirthDate = (order["birth_date"].strftime("%Y%m%d")
                               if order.get("birth_date") else "")
    answer.PatientSex = order["sex"]
    answer.ReferringPhysicianName = _person_name(order["physician_name"])
    answer.RequestingPhysician = answer.ReferringPhysicianName
    answer.StudyInstanceUID = order["study_uid"]
    answer.RequestedProcedureID = order["procedure_id"][:16]
    answer.RequestedProcedureDescription = order["procedure"][:64]
    answer.RequestedProcedurePriority = "STAT" if order["urgent"] else "ROUTINE"
    answer.RequestedProcedureComments = order.get("comment", "")[:10240]
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = start.strftime("%Y%m%d") if start else ""
    step.ScheduledProcedureStepStartTime = start.strftime("%H%M%S") if start else ""
    step.ScheduledProcedureStepDescription = order["procedure"][:64]
    step.ScheduledProcedureStepID = order["procedure_id"][:16]
    step.ScheduledProcedureStepStatus = "SCHEDULED"
    step.ScheduledPerformingPhysicianName = ""
    answer.ScheduledProcedureStepSequence = [step]
    if start:
        answer.TimezoneOffsetFromUTC = start.strftime("%z")
    return answer


def encode(answer: Dataset) -> bytes:
    """A DICOM file in memory, as Orthanc's worklist functions read it."""
    answer.file_meta = FileMetaDataset()
    answer.file_meta.MediaStorageSOPClassUID = MODALITY_WORKLIST_FIND
    answer.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    answer.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = BytesIO()
    answer.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def order_item(order, settings: WorklistSettings) -> WorklistItem:
    answer = order_dataset(order, settings)
    step = answer.ScheduledProcedureStepSequence[0]
    return WorklistItem(
        dicom=encode(answer), modality=step.Modality,
        station_aet=step.ScheduledStationAETitle,
        date=step.ScheduledProcedureStepStartDate,
        patient_id=answer.PatientID, accession=answer.AccessionNumber,
        patient_name=folded(str(answer.PatientName)))


def folded(text):
    """Without case nor accents: at least as loose as Orthanc's own PN
    matching, so the prefix filter never drops what Orthanc would match.
    The same for every charset the query came in (decoded by pydicom):
    compatibility forms fold too (half-width ﾀﾞ -> タ), and what NFKD took
    apart without being an accent (Hangul syllables) is put back."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare).casefold()


# ---- what a query asks, for the cheap filter ----

@dataclass(frozen=True)
class QueryKeys:
    """The single-value keys of a query; None means "any"."""
    modality: Optional[str] = None
    station_aet: Optional[str] = None
    date_from: Optional[str] = None
    date_to: Optional[str] = None
    patient_id: Optional[str] = None
    accession: Optional[str] = None
    name_prefix: Optional[str] = None

    def admits(self, item: WorklistItem) -> bool:
        return ((self.modality is None or item.modality == self.modality)
                and (self.station_aet is None or item.station_aet == self.station_aet)
                and (self.date_from is None or item.date >= self.date_from)
                and (self.date_to is None or item.date <= self.date_to)
                and (self.patient_id is None or item.patient_id == self.patient_id)
                and (self.accession is None or item.accession == self.accession)
                and (self.name_prefix is None or item.patient_name.startswith(self.name_prefix)))


def _exact(value):
    """A value that can only match itself; wildcards and lists go to Orthanc."""
    text = str(value or "").strip()
    if not text or any(c in text for c in "*?\\"):
        return None
    return text


def _name_prefix(value):
    """The literal start of a PatientName pattern such as "Müll*"; other
    patterns (and exact names, which Orthanc may match loosely) go to
    Orthanc."""
    text = str(value or "").strip()
    literal = text[:-1]
    if not text.endswith("*") or not literal or any(c in literal for c in "*?\\"):
        return None
    return folded(literal)


def _date_range(value):
    text = str(value or "").strip()
    if not text or "-" not in text and not text.isdigit():
        return None, None
    start, _, end = text.partition("-") if "-" in text else (text, "", text)
    valid = lambda d: d if len(d) == 8 and d.isdigit() else None
    return valid(start), valid(end)


def query_keys(query: Dataset) -> QueryKeys:
    step = Dataset()
    if query.get("ScheduledProcedureStepSequence"):
        step = query.ScheduledProcedureStepSequence[0]
    date_from, date_to = _date_range(step.get("ScheduledProcedureStepStartDate"))
    return QueryKeys(
        modality=_exact(step.get("Modality")),
        station_aet=_exact(step.get("ScheduledStationAETitle")),
        date_from=date_from, date_to=date_to,
        patient_id=_exact(query.get("PatientID")),
        accession=_exact(query.get("AccessionNumber")),
        name_prefix=_name_prefix(query.get("PatientName")))


# ---- the cache ----

class OrderCache:
    """The open orders as worklist answers, refreshed in the background.

    `fetch` returns GNU Health's orders (raising when it cannot); `log`
    takes (level, line). Nothing here waits on GNU Health but the thread.
    """

    def __init__(self, settings: WorklistSettings, fetch, log, clock=time.monotonic):
        self.settings = settings
        self._fetch = fetch
        self._log = log
        self._clock = clock
        # order key -> WorklistItem, in GNU Health's order (oldest first)
        self._items = {}
        self._loaded_at = None
        self._load_seconds = None
        self._last_error = None
        self._queries = 0  # C-FIND queries answered since the start
        self._stale_warned_at = None
        self._stop = threading.Event()
        self._thread = None

    # -- background refresh --

    def start(self):
        self._thread = threading.Thread(target=self._run, name="gnuhealth-worklist",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout=None):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self):
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.settings.refresh_interval)

    def refresh(self):
        """Load the open orders once; on failure keep the last good cache."""
        started = self._clock()
        try:
            orders = self._fetch()
            items = {}
            for order in orders:
                key = _order_key(order)
                items[key] = self._items.get(key) or order_item(order, self.settings)
        except Exception as error:  # the cache must survive anything GNU Health says
            message = f"{type(error).__name__}: {error}"
            if message != self._last_error:
                self._log("warning", f"GNU Health worklist: cannot load the imaging "
                                     f"orders ({message}); answering from the last "
                                     f"good cache ({len(self._items)} orders)")
            self._last_error = message
            return False
        self._items = items
        self._loaded_at = self._clock()
        self._load_seconds = self._loaded_at - started
        if self._last_error is not None:
            self._log("warning", f"GNU Health worklist: orders loaded again "
                                 f"({len(items)} open)")
        self._last_error = None
        return True

    # -- queries --

    def candidates(self, query_dicom: bytes, calling_aet: str):
        """The answers that may match the query (a DICOM file in memory),
        for Orthanc's matcher."""
        allowed = self.settings.allowed_calling_aets
        if allowed and calling_aet.strip() not in allowed:
            self._log("warning", f"GNU Health worklist: refused a query from AE "
                                 f"{calling_aet!r}, which is not in "
                                 "GnuHealth.Worklist.AllowedCallingAETs")
            return []
        self._queries += 1
        self._warn_if_stale()
        keys = query_keys(dcmread(BytesIO(query_dicom), force=True))
        return [item.dicom for item in self._items.values() if keys.admits(item)]

    def age(self):
        if self._loaded_at is None:
            return None
        return self._clock() - self._loaded_at

    def _stale(self, age):
        return age is None or age > self.settings.max_staleness

    def _warn_if_stale(self):
        age = self.age()
        if not self._stale(age):
            return
        now = self._clock()
        # One line per MaxStaleness, not one per query.
        if self._stale_warned_at is not None and \
                now - self._stale_warned_at < self.settings.max_staleness:
            return
        self._stale_warned_at = now
        if age is None:
            self._log("warning", "GNU Health worklist: no orders loaded yet "
                                 f"({self._last_error or 'first load running'}); "
                                 f"the worklist is empty")
        else:
            self._log("warning", f"GNU Health worklist: answering from orders "
                                 f"loaded {age:.0f} s ago ({self._last_error})")

    def status(self):
        age = self.age()
        return {
            "orders": len(self._items),
            "age_seconds": None if age is None else round(age, 1),
            "stale": self._stale(age),
            # how long the last good load took (RPC and encoding)
            "load_seconds": None if self._load_seconds is None else round(
                self._load_seconds, 3),
            "last_error": self._last_error,
            "queries": self._queries,
        }


def _order_key(order):
    """A hashable image of an order: unchanged orders are not re-encoded."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v)
                        for k, v in order.items()))

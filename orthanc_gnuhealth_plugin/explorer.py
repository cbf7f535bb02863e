"""What Orthanc Explorer shows of a study in GNU Health.

`GET /gnuhealth/studies/{id}/state` answers from the worker's own status
(failed studies and their reasons) plus one look-up of the study in GNU Health
over RPC, with the sync account. The page (explorer.js, loaded through
ExtendOrthancExplorer) calls it once when a study's page opens: a low-volume
route, as orthanc-python 4.0 leaks every REST call's arguments.
"""
import threading
import xmlrpc.client
from pathlib import Path
from urllib.parse import quote

from proteus import config as proteus_config

from .errors import GnuHealthUnavailable
from .gnuhealth_client import SessionExpired, classify, open_session
from .mapping import person_name

STUDY_MODEL = "gnuhealth.radiology.study"
_FIELDS = ["id", "reception", "pacs_state", "link_state", "link_note",
           "last_sync", "party.rec_name"]
# With GNU Health's health_imaging, the study also links to its patient and
# order; the sync account may not read them: then it asks for less.
_FIELD_SETS = [_FIELDS + ["patient.rec_name", "imaging_request.rec_name"],
               _FIELDS + ["patient.rec_name"], _FIELDS]


def javascript():
    "The Orthanc Explorer extension (ExtendOrthancExplorer)."
    return (Path(__file__).with_name("explorer.js")).read_text(encoding="utf-8")


def sao_url(tryton_public_url, database, record_id):
    "The study's form in the SAO web client."
    return (f"{tryton_public_url.rstrip('/')}/#{quote(database, safe='')}"
            f"/model/{STUDY_MODEL}/{record_id}")


def _name(study, decoded):
    tags = (study or {}).get("MainDicomTags") or {}
    values = decoded.values if decoded else {}
    words = [values.get("description", tags.get("StudyDescription")), tags.get("StudyDate")]
    patient = person_name(values.get("dicom_patient_name", (
        (study or {}).get("PatientMainDicomTags") or {}).get("PatientName")))
    if patient:
        words.append(f"of {patient.replace('^', ' ').strip()}")
    return " ".join(w for w in words if w) or tags.get("StudyInstanceUID") or "this study"


def describe(orthanc_id, study, failed, record, error, settings, decoded=None):
    """The state of one study, as JSON for the page.

    `study`: Orthanc's /studies/{id}; `failed`: the worker's failed list;
    `record`: the study as GNU Health has it (None if not there);
    `error`: why GNU Health could not be asked (None if it answered);
    `decoded`: the study's text as pydicom reads it (dicom_text.StudyText).
    `message` is a sentence for the user: what state, what to do.
    """
    name = _name(study, decoded)
    state = {"orthanc_id": orthanc_id, "study": name, "tryton_id": None,
             "tryton_url": None, "patient": None, "imaging_request": None,
             "link_state": None, "link_note": None, "reason": None,
             "pacs_state": None, "last_sync": None}
    failure = next((f for f in failed or [] if f.get("orthanc_id") == orthanc_id), None)
    if record:
        patient = record.get("patient.") or record.get("party.") or {}
        request = record.get("imaging_request.") or {}
        state.update(
            tryton_id=record["id"],
            tryton_url=sao_url(settings.tryton_public_url or settings.tryton_url,
                               settings.tryton_database, record["id"]),
            patient=patient.get("rec_name"),
            imaging_request=request.get("rec_name"),
            link_state=record.get("link_state"),
            link_note=record.get("link_note"),
            pacs_state=record.get("pacs_state"),
            last_sync=_text(record.get("last_sync")))
    if failure:
        state.update(state="failed", reason=failure.get("reason"), message=(
            f"GNU Health refused the study {name}: {failure.get('reason')}. "
            f"Fix the cause in GNU Health or in the DICOM tags, then press "
            f"\"Send to GNU Health now\"; it is also retried automatically"
            + (f" (next at {failure['next_retry']})." if failure.get("next_retry") else ".")))
    elif error:
        state.update(state="unknown", reason=str(error), message=(
            f"Cannot ask GNU Health about the study {name}: {error}. "
            f"Images keep arriving in Orthanc and nothing is lost; the plugin "
            f"retries by itself. Check /gnuhealth/status."))
    elif not record:
        state.update(state="not-synced", message=(
            f"The study {name} is not in GNU Health yet. It is usually pushed "
            f"within seconds; press \"Send to GNU Health now\" to push it at once."))
    else:
        receiving = record.get("reception") == "receiving"
        state["state"] = "receiving" if receiving else "synced"
        where = (f"linked to {state['patient']}" if state["link_state"] == "linked"
                 else "not linked to a patient: radiology staff link it in GNU "
                      "Health (Radiology > Unmatched Studies)"
                 if state["link_state"] in ("unmatched", "conflict") else "")
        state["message"] = (
            f"The study {name} is in GNU Health"
            + (" (still receiving images)" if receiving else "")
            + (f", {where}." if where else "."))
    return state


def _text(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


class StudyLookup:
    """Finds a study in GNU Health with the sync account.

    Called from Orthanc's HTTP threads: one session shared under a lock
    (proteus' per-thread configuration would log in once per HTTP thread).
    """

    def __init__(self, settings, login=proteus_config.set_xmlrpc_session):
        self._settings = settings
        self._login_function = login
        self._lock = threading.Lock()
        self._config = None
        self._fields = 0  # index in _FIELD_SETS

    def find(self, orthanc_id):
        """The study's record (dict) or None; raises GnuHealthUnavailable."""
        with self._lock:
            try:
                return self._find(orthanc_id)
            except SessionExpired:
                self._config = None
                try:
                    return self._find(orthanc_id)
                except SessionExpired:
                    raise GnuHealthUnavailable(
                        f"GNU Health refuses the session of "
                        f"{self._settings.tryton_user!r}") from None

    def _find(self, orthanc_id):
        domain = [("server.label", "=", self._settings.server_label),
                  ("orthanc_id", "=", orthanc_id)]
        while True:
            try:
                rows = self._call("search_read", domain, 0, 1, None,
                                  _FIELD_SETS[self._fields])
            except xmlrpc.client.Fault as fault:
                if self._fields + 1 < len(_FIELD_SETS) and fault.faultCode != 3:
                    # Plain Tryton (no patients nor orders), or no access.
                    self._fields += 1
                    continue
                raise classify(fault, self._settings) or fault
            return rows[0] if rows else None

    def _call(self, method, *args):
        if self._config is None:
            self._config = self._login()
        config = self._config
        try:
            return getattr(config.server, f"model.{STUDY_MODEL}.{method}")(
                *args, config.context)
        except xmlrpc.client.Fault:
            raise
        except Exception as error:
            translated = classify(error, self._settings)
            if translated is None:
                raise
            raise translated from error

    def _login(self):
        return open_session(self._settings, self._login_function)

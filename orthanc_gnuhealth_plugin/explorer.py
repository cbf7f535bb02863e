"""What Orthanc Explorer shows of a study in GNU Health.

`GET /gnuhealth/studies/{id}/state` answers from the worker's own status
(failed studies and their reasons) plus one look-up of the study in GNU Health
over RPC, with the sync account (gnuhealth_client.StudyLookup). The page
(explorer.js, loaded through ExtendOrthancExplorer) calls it once when a
study's page opens: a low-volume route, as orthanc-python 4.0 leaks every
REST call's arguments.

Presentation only: this module imports nothing from the rest of the plugin.
"""
from pathlib import Path
from urllib.parse import quote


def javascript():
    "The Orthanc Explorer extension (ExtendOrthancExplorer)."
    return (Path(__file__).with_name("explorer.js")).read_text(encoding="utf-8")


def sao_url(tryton_public_url, database, model, record_id):
    "The record's form in the SAO web client."
    return (f"{tryton_public_url.rstrip('/')}/#{quote(database, safe='')}"
            f"/model/{model}/{record_id}")


def _name(study, text):
    """What the user calls the study: `text` is its record from
    mapping.map_study, whose names are decoded as pydicom reads them."""
    words = [text.get("description"),
             ((study or {}).get("MainDicomTags") or {}).get("StudyDate")]
    patient = text.get("dicom_patient_name")
    if patient:
        words.append(f"of {patient.replace('^', ' ').strip()}")
    return " ".join(w for w in words if w) or text.get("study_uid") or "this study"


def describe(orthanc_id, study, failed, record, error, settings, model, text):
    """The state of one study, as JSON for the page.

    `study`: Orthanc's /studies/{id}; `failed`: the worker's failed list;
    `record`: the study as GNU Health has it (None if not there), a record
    of the Tryton `model`;
    `error`: why GNU Health could not be asked (None if it answered);
    `text`: the study's record from mapping.map_study (decoded names).
    `message` is a sentence for the user: what state, what to do.
    """
    name = _name(study, text)
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
                               settings.tryton_database, model, record["id"]),
            patient=patient.get("rec_name"),
            imaging_request=_order(request),
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
        where = _where(state)
        state["message"] = (
            f"The study {name} is in GNU Health"
            + (" (still receiving images)" if receiving else "")
            + (f", {where}." if where else "."))
    return state


def _order(request):
    """The imaging order as radiology staff name it: "IMGREQ0001: CT chest
    (requested), requested by Dr. X"; parts the sync account may not read
    are left out. None without an order."""
    test = (request.get("requested_test.") or {}).get("rec_name")
    words = ": ".join(w for w in (request.get("request"), test) if w)
    if request.get("state"):
        words += f" ({request['state']})"
    doctor = (request.get("doctor.") or {}).get("rec_name")
    if doctor:
        words += f", requested by {doctor}"
    return words.strip() or None


def _where(state):
    "Where the study stands with its patient, and what staff do about it."
    staff = "radiology staff decide in GNU Health (Radiology > Unmatched Studies)"
    if state["link_state"] == "linked":
        return f"linked to {state['patient']}"
    if state["link_state"] == "conflict":
        # A conflict keeps an earlier link until a person decides (clinicians
        # no longer see the study meanwhile): say both.
        kept = (f", and its link to {state['patient']} stays until they do"
                if state["patient"] else "")
        return (f"IN CONFLICT: {state['link_note'] or 'contradicting evidence'}; "
                f"{staff}{kept}")
    if state["link_state"] == "unmatched":
        return f"not linked to a patient: {staff}"
    return ""


def _text(value):
    return value.isoformat() if hasattr(value, "isoformat") else value

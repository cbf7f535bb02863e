"""Turn Orthanc's JSON for one study into the study record pushed to GNU Health.

Input: the answers of GET /studies/{id}, /studies/{id}/series and
/studies/{id}/instances. Output (keys in GNU Health's field names):

    {"orthanc_id", "study_uid", "accession", "study_id", "study_date",
     "study_time", "description", "institution", "referring_physician",
     "dicom_patient_id", "dicom_patient_name", "dicom_patient_birth_date",
     "dicom_patient_sex", "accession_issuer", "modalities", "complete",
     "last_update",
     "series": [{"orthanc_id", "series_uid", "modality", "number",
                 "description", "body_part", "series_date",
                 "instances": [{"orthanc_id", "sop_instance_uid", "number"}]}]}

Dates are "YYYY-MM-DD", times "HH:MM:SS", numbers int; anything missing or
unparsable is None. Modalities send all kinds of junk in DICOM tags and one
bad tag must never stop a study from reaching GNU Health, so nothing here
raises on tag content.

Where Orthanc misdecodes a study's text (ISO 2022 character sets), the
caller passes the values pydicom read (dicom_text.StudyText): they replace
Orthanc's. Person names are written as pydicom writes them: without empty
trailing component groups ("Wang^XiaoDong=王^小東=" -> "Wang^XiaoDong=王^小東").
"""
import datetime
import re

MAX_TEXT = 1000
MAX_UID = 64  # DICOM PS3.5: a UID is at most 64 characters
# Characters XML 1.0 cannot carry (XML-RPC would fail on the whole batch):
# C0 controls but tab/LF/CR (ESC of a badly decoded ISO 2022 value...),
# lone surrogates and the two non-characters.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Tryton's Char fields refuse tab, CR and LF ("contains some invalid chars").
_LINE_BREAKS = re.compile("[\t\r\n]+")


def text(value, limit=MAX_TEXT):
    """A stripped string capped to `limit`, or None when empty/not a string."""
    if not isinstance(value, str):
        return None
    # Strip again after the cut, which may end on a space.
    value = _LINE_BREAKS.sub(" ", _NOT_XML.sub("", value))
    return value.strip()[:limit].rstrip() or None


def person_name(value):
    """text(), without the empty trailing component groups Orthanc keeps:
    "A^B==" -> "A^B"; an empty middle group stays ("A^B==C")."""
    value = text(value)
    if value is None:
        return None
    groups = value.split("=")
    while groups and not groups[-1].strip():
        groups.pop()
    return "=".join(groups).rstrip() or None


def uid(value):
    """A UID without the space/NUL padding DICOM allows, or None.

    Never cut: two distinct over-long UIDs cut to 64 characters could
    merge two studies. GNU Health refuses a UID over 64 characters, so such
    a study lands in the failed list, named, with that reason."""
    if not isinstance(value, str):
        return None
    # text() turns control characters into spaces, so drop spaces after it.
    cleaned = text(value, None)
    return cleaned.replace(" ", "") or None if cleaned else None


def dicom_date(value):
    """YYYYMMDD -> "YYYY-MM-DD"; anything else (20241345, 2024, "") -> None."""
    value = text(value)
    if not value or len(value) != 8 or not (value.isascii() and value.isdigit()):
        return None
    try:
        return datetime.date(int(value[:4]), int(value[4:6]), int(value[6:])).isoformat()
    except ValueError:
        return None


def dicom_time(value):
    """HHMMSS(.ffffff) / HHMM / HH -> "HH:MM:SS"; invalid (2461) -> None."""
    value = text(value)
    if not value:
        return None
    whole = value.split(".", 1)[0]
    if len(whole) not in (2, 4, 6) or not whole.isdigit() or not whole.isascii():
        return None
    hour, minute, second = (int(whole[i:i + 2] or 0) for i in (0, 2, 4))
    # DICOM allows a leap second (60).
    if hour > 23 or minute > 59 or second > 60:
        return None
    return f"{hour:02d}:{minute:02d}:{min(second, 59):02d}"


def integer(value):
    """ "  3 ", "3.0" -> 3; "abc", "3.5", "" -> None."""
    value = text(value)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number or number in (float("inf"), float("-inf")) or not number.is_integer():
        return None
    # GNU Health stores these in 32-bit integer columns.
    if abs(number) >= 2 ** 31:
        return None
    return int(number)


def _tags(resource, key="MainDicomTags"):
    tags = resource.get(key) if isinstance(resource, dict) else None
    return tags if isinstance(tags, dict) else {}


def map_instance(instance):
    tags = _tags(instance)
    return {
        "orthanc_id": instance.get("ID"),
        "sop_instance_uid": uid(tags.get("SOPInstanceUID")),
        "number": integer(tags.get("InstanceNumber")),
    }


def map_series(series, instances, decoded=None):
    """`decoded`: series Orthanc id -> SeriesDescription read by pydicom."""
    tags = _tags(series)
    decoded = decoded or {}
    return {
        "orthanc_id": series.get("ID"),
        "series_uid": uid(tags.get("SeriesInstanceUID")),
        "modality": text(tags.get("Modality"), 16),
        "number": integer(tags.get("SeriesNumber")),
        "description": text(decoded.get(series.get("ID"), tags.get("SeriesDescription"))),
        "body_part": text(tags.get("BodyPartExamined")),
        "series_date": dicom_date(tags.get("SeriesDate")),
        "instances": sorted((map_instance(i) for i in instances), key=_by_number),
    }


def _by_number(record):
    # Unnumbered items last, then a stable order by UID.
    number = record["number"]
    return (number is None, number or 0,
            record.get("sop_instance_uid") or record.get("series_uid") or "")


def map_study(study, series_list, instances, decoded=None):
    """The study record; `series_list`/`instances` may be None (vanished);
    `decoded`: a dicom_text.StudyText, whose values replace Orthanc's."""
    tags = _tags(study)
    patient = _tags(study, "PatientMainDicomTags")
    values = decoded.values if decoded else {}
    by_series = {}
    for instance in instances or []:
        by_series.setdefault(instance.get("ParentSeries"), []).append(instance)
    descriptions = decoded.series if decoded else None
    series = sorted((map_series(s, by_series.get(s.get("ID"), []), descriptions)
                     for s in series_list or []), key=_by_number)
    modalities = sorted({s["modality"] for s in series if s["modality"]})
    return {
        "orthanc_id": study.get("ID"),
        "study_uid": uid(tags.get("StudyInstanceUID")),
        "accession": text(tags.get("AccessionNumber"), 64),
        "study_id": text(tags.get("StudyID"), 64),
        "study_date": dicom_date(tags.get("StudyDate")),
        "study_time": dicom_time(tags.get("StudyTime")),
        "description": text(values.get("description", tags.get("StudyDescription"))),
        "institution": text(values.get("institution", tags.get("InstitutionName"))),
        "referring_physician": person_name(values.get(
            "referring_physician", tags.get("ReferringPhysicianName"))),
        "dicom_patient_id": text(patient.get("PatientID"), 64),
        "dicom_patient_name": person_name(values.get(
            "dicom_patient_name", patient.get("PatientName"))),
        "dicom_patient_birth_date": dicom_date(patient.get("PatientBirthDate")),
        "dicom_patient_sex": text(patient.get("PatientSex"), 16),
        "accession_issuer": text(values.get("accession_issuer")),
        "modalities": " ".join(modalities) or None,
        # Orthanc declares a study stable after StableAge seconds without a new
        # instance; until then GNU Health shows it as still receiving.
        "complete": study.get("IsStable") is True,
        "last_update": text(study.get("LastUpdate"), 32),  # for the audit (audit.py)
        "series": series,
    }

"""The study state shown in Orthanc Explorer (GET /gnuhealth/studies/{id}/state)."""
from orthanc_gnuhealth_plugin import explorer, mapping
from orthanc_gnuhealth_plugin.config import Settings
from orthanc_gnuhealth_plugin.dicom_text import StudyText

STUDY_ID = "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
STUDY = {"MainDicomTags": {"StudyDescription": "CT chest", "StudyDate": "20040119",
                           "StudyInstanceUID": "1.2.3"},
         "PatientMainDicomTags": {"PatientName": "García^Ana"}}
MODEL = "gnuhealth.radiology.study"  # SPEC.md
SETTINGS = Settings(tryton_url="http://his:8000/", tryton_public_url="https://his.example/",
                    tryton_database="health", tryton_password="x")
RECORD = {"id": 7, "reception": "complete", "pacs_state": "available",
          "link_state": "linked", "link_note": "by PUID", "last_sync": None,
          "party.": {"id": 3, "rec_name": "García, Ana"},
          "patient.": {"id": 4, "rec_name": "García, Ana"}}


def describe(study, failed, record, error, decoded=None):
    "As the state route does: the names come from the study's mapped record."
    return explorer.describe(STUDY_ID, study, failed, record, error, SETTINGS, MODEL,
                             mapping.map_study(study, None, None, decoded))


def test_synced_study_names_patient_and_links_to_sao():
    state = describe(STUDY, [], RECORD, None)
    assert state["state"] == "synced"
    assert state["patient"] == "García, Ana"
    assert state["tryton_url"] == (
        "https://his.example/#health/model/gnuhealth.radiology.study/7")
    assert "CT chest" in state["message"] and "García, Ana" in state["message"]


def test_the_name_shown_is_the_decoded_one():
    study = {"MainDicomTags": {"StudyDescription": "Chest", "StudyDate": "20040119"},
             "PatientMainDicomTags": {"PatientName": "$B$d$^$@(B^$B$?$m$&(B"}}
    decoded = StudyText(values={"dicom_patient_name": "Yamada^Tarou=やまだ^たろう="})
    state = describe(study, [], None, None, decoded)
    assert state["study"] == "Chest 20040119 of Yamada Tarou=やまだ たろう"
    # Orthanc's own (trusted) names are normalised too.
    study["PatientMainDicomTags"]["PatientName"] = "Wang^XiaoDong=王^小東="
    state = describe(study, [], None, None)
    assert state["study"] == "Chest 20040119 of Wang XiaoDong=王 小東"


def test_receiving_and_unmatched():
    record = dict(RECORD, reception="receiving", link_state="unmatched")
    del record["patient."], record["party."]
    state = describe(STUDY, [], record, None)
    assert state["state"] == "receiving"
    assert state["patient"] is None
    assert "Unmatched Studies" in state["message"]


def test_failed_study_says_why_and_what_to_do():
    failed = [{"orthanc_id": STUDY_ID, "reason": "bad date", "next_retry": "2026-01-01T00:00:00"}]
    state = describe(STUDY, failed, None, None)
    assert state["state"] == "failed" and state["reason"] == "bad date"
    assert "CT chest" in state["message"] and "Send to GNU Health now" in state["message"]


def test_not_synced_and_unreachable():
    assert describe(STUDY, [], None, None)["state"] == "not-synced"
    state = describe(STUDY, [], None, OSError("refused"))
    assert state["state"] == "unknown" and "nothing is lost" in state["message"]


def test_javascript_is_shipped():
    assert "Send to GNU Health now" in explorer.javascript()


def test_a_conflict_says_why_and_who_decides():
    note = "the same study UID 1.2.3 arrived for patients A and B"
    state = describe(STUDY, [], dict(RECORD, link_state="conflict", link_note=note), None)
    assert state["message"] == (
        "The study CT chest 20040119 of García Ana is in GNU Health, IN CONFLICT: "
        "the same study UID 1.2.3 arrived for patients A and B; radiology staff "
        "decide in GNU Health (Radiology > Unmatched Studies), and its link to "
        "García, Ana stays until they do.")


def test_imaging_order_is_named_by_code_test_state_and_professional():
    """Not GNU Health's rec_name of the order ("(Administrator) //"): what
    radiology staff need. Parts the sync account could not read are left out."""
    order = {"id": 9, "request": "IMGREQ0004", "state": "requested",
             "requested_test.": {"id": 2, "rec_name": "CT chest"},
             "doctor.": {"id": 5, "rec_name": "Dr. Clara Clinician"}}
    state = describe(STUDY, [], dict(RECORD, **{"imaging_request.": order}), None)
    assert state["imaging_request"] == (
        "IMGREQ0004: CT chest (requested), requested by Dr. Clara Clinician")
    del order["doctor."]
    state = describe(STUDY, [], dict(RECORD, **{"imaging_request.": order}), None)
    assert state["imaging_request"] == "IMGREQ0004: CT chest (requested)"
    assert describe(STUDY, [], RECORD, None)["imaging_request"] is None

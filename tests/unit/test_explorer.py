"""The study state shown in Orthanc Explorer (GET /gnuhealth/studies/{id}/state)."""
from orthanc_gnuhealth_plugin import explorer
from orthanc_gnuhealth_plugin.config import Settings

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


def test_synced_study_names_patient_and_links_to_sao():
    state = explorer.describe(STUDY_ID, STUDY, [], RECORD, None, SETTINGS, MODEL)
    assert state["state"] == "synced"
    assert state["patient"] == "García, Ana"
    assert state["tryton_url"] == (
        "https://his.example/#health/model/gnuhealth.radiology.study/7")
    assert "CT chest" in state["message"] and "García, Ana" in state["message"]


def test_receiving_and_unmatched():
    record = dict(RECORD, reception="receiving", link_state="unmatched")
    del record["patient."], record["party."]
    state = explorer.describe(STUDY_ID, STUDY, [], record, None, SETTINGS, MODEL)
    assert state["state"] == "receiving"
    assert state["patient"] is None
    assert "Unmatched Studies" in state["message"]


def test_failed_study_says_why_and_what_to_do():
    failed = [{"orthanc_id": STUDY_ID, "reason": "bad date", "next_retry": "2026-01-01T00:00:00"}]
    state = explorer.describe(STUDY_ID, STUDY, failed, None, None, SETTINGS, MODEL)
    assert state["state"] == "failed" and state["reason"] == "bad date"
    assert "CT chest" in state["message"] and "Send to GNU Health now" in state["message"]


def test_not_synced_and_unreachable():
    assert explorer.describe(STUDY_ID, STUDY, [], None, None, SETTINGS, MODEL)["state"] == "not-synced"
    state = explorer.describe(STUDY_ID, STUDY, [], None, OSError("refused"), SETTINGS, MODEL)
    assert state["state"] == "unknown" and "nothing is lost" in state["message"]


def test_javascript_is_shipped():
    assert "Send to GNU Health now" in explorer.javascript()

"""The study state shown in Orthanc Explorer (GET /gnuhealth/studies/{id}/state)."""
import contextlib
import xmlrpc.client

import pytest

from orthanc_gnuhealth_plugin import explorer
from orthanc_gnuhealth_plugin.config import Settings
from orthanc_gnuhealth_plugin.dicom_text import StudyText
from orthanc_gnuhealth_plugin.errors import GnuHealthUnavailable

STUDY_ID = "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
STUDY = {"MainDicomTags": {"StudyDescription": "CT chest", "StudyDate": "20040119",
                           "StudyInstanceUID": "1.2.3"},
         "PatientMainDicomTags": {"PatientName": "García^Ana"}}
SETTINGS = Settings(tryton_url="http://his:8000/", tryton_public_url="https://his.example/",
                    tryton_database="health", tryton_password="x")
RECORD = {"id": 7, "reception": "complete", "pacs_state": "available",
          "link_state": "linked", "link_note": "by PUID", "last_sync": None,
          "party.": {"id": 3, "rec_name": "García, Ana"},
          "patient.": {"id": 4, "rec_name": "García, Ana"}}


def test_synced_study_names_patient_and_links_to_sao():
    state = explorer.describe(STUDY_ID, STUDY, [], RECORD, None, SETTINGS)
    assert state["state"] == "synced"
    assert state["patient"] == "García, Ana"
    assert state["tryton_url"] == (
        "https://his.example/#health/model/gnuhealth.radiology.study/7")
    assert "CT chest" in state["message"] and "García, Ana" in state["message"]


def test_the_name_shown_is_the_decoded_one():
    study = {"MainDicomTags": {"StudyDescription": "Chest", "StudyDate": "20040119"},
             "PatientMainDicomTags": {"PatientName": "$B$d$^$@(B^$B$?$m$&(B"}}
    decoded = StudyText(values={"dicom_patient_name": "Yamada^Tarou=やまだ^たろう="})
    state = explorer.describe(STUDY_ID, study, [], None, None, SETTINGS, decoded)
    assert state["study"] == "Chest 20040119 of Yamada Tarou=やまだ たろう"
    # Orthanc's own (trusted) names are normalised too.
    study["PatientMainDicomTags"]["PatientName"] = "Wang^XiaoDong=王^小東="
    state = explorer.describe(STUDY_ID, study, [], None, None, SETTINGS)
    assert state["study"] == "Chest 20040119 of Wang XiaoDong=王 小東"


def test_receiving_and_unmatched():
    record = dict(RECORD, reception="receiving", link_state="unmatched")
    del record["patient."], record["party."]
    state = explorer.describe(STUDY_ID, STUDY, [], record, None, SETTINGS)
    assert state["state"] == "receiving"
    assert state["patient"] is None
    assert "Unmatched Studies" in state["message"]


def test_failed_study_says_why_and_what_to_do():
    failed = [{"orthanc_id": STUDY_ID, "reason": "bad date", "next_retry": "2026-01-01T00:00:00"}]
    state = explorer.describe(STUDY_ID, STUDY, failed, None, None, SETTINGS)
    assert state["state"] == "failed" and state["reason"] == "bad date"
    assert "CT chest" in state["message"] and "Send to GNU Health now" in state["message"]


def test_not_synced_and_unreachable():
    assert explorer.describe(STUDY_ID, STUDY, [], None, None, SETTINGS)["state"] == "not-synced"
    state = explorer.describe(STUDY_ID, STUDY, [], None, OSError("refused"), SETTINGS)
    assert state["state"] == "unknown" and "nothing is lost" in state["message"]


class FakeServer:
    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def __getattr__(self, name):
        def call(*args):
            self.calls.append((name, args))
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return call


def lookup_with(server):
    class Config:
        context = {}
    Config.server = server

    @contextlib.contextmanager
    def login(url, **kwargs):
        yield Config
    return explorer.StudyLookup(SETTINGS, login=login)


def test_lookup_asks_for_less_when_fields_are_not_readable():
    server = FakeServer([xmlrpc.client.Fault(1, 'You are not allowed to access "Request"'),
                         [RECORD], [RECORD]])
    lookup = lookup_with(server)
    assert lookup.find(STUDY_ID) == RECORD
    assert lookup.find(STUDY_ID) == RECORD
    fields = [args[4] for _, args in server.calls]
    assert "imaging_request.rec_name" in fields[0]
    assert "imaging_request.rec_name" not in fields[1] and fields[1] == fields[2]
    assert server.calls[0][1][0] == [("server.label", "=", "orthanc"),
                                     ("orthanc_id", "=", STUDY_ID)]


def test_lookup_reports_unreachable():
    lookup = lookup_with(FakeServer([ConnectionRefusedError("refused")]))
    with pytest.raises(GnuHealthUnavailable):
        lookup.find(STUDY_ID)


def test_javascript_is_shipped():
    assert "Send to GNU Health now" in explorer.javascript()

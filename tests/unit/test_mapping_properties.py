"""Property test of the mapping: whatever Orthanc's JSON holds, map_study
never raises and gives values GNU Health accepts (or, for an over-long UID,
refuses by name)."""
import datetime
import xml.parsers.expat
import xmlrpc.client

from hypothesis import given, settings, strategies as st

from orthanc_gnuhealth_plugin.mapping import MAX_TEXT, map_study

junk = st.one_of(st.none(), st.integers(), st.text(), st.text(alphabet="0123456789 .:-"),
                 st.lists(st.text(), max_size=2), st.floats(allow_nan=True))
tags = st.dictionaries(st.sampled_from([
    "StudyInstanceUID", "AccessionNumber", "StudyID", "StudyDate", "StudyTime",
    "StudyDescription", "InstitutionName", "ReferringPhysicianName",
    "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
    "BodyPartExamined", "SeriesDate", "SOPInstanceUID", "InstanceNumber"]), junk)
patient = st.dictionaries(st.sampled_from([
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex"]), junk)


@settings(max_examples=300, deadline=None)
@given(study_tags=tags, patient_tags=patient, series_tags=st.lists(tags, max_size=3),
       instance_tags=st.lists(tags, max_size=4), stable=junk)
def test_map_study_never_raises_and_gives_acceptable_values(
        study_tags, patient_tags, series_tags, instance_tags, stable):
    study = {"ID": "s", "MainDicomTags": study_tags, "PatientMainDicomTags": patient_tags,
             "IsStable": stable}
    series = [{"ID": f"se{n}", "MainDicomTags": t} for n, t in enumerate(series_tags)]
    instances = [{"ID": f"i{n}", "ParentSeries": f"se{n % max(len(series), 1)}",
                  "MainDicomTags": t} for n, t in enumerate(instance_tags)]
    record = map_study(study, series, instances)
    assert record["complete"] in (True, False)
    for key, value in record.items():
        if key in ("study_date", "dicom_patient_birth_date") and value is not None:
            datetime.date.fromisoformat(value)
        elif key == "study_time" and value is not None:
            datetime.datetime.strptime(value, "%H:%M:%S")
        elif isinstance(value, str) and key not in ("study_uid", "orthanc_id"):
            assert len(value) <= MAX_TEXT and value == value.strip() and value
            assert not set(value) & set("\t\r\n")  # Tryton's Char refuses them
    for s in record["series"]:
        assert s["number"] is None or abs(s["number"]) < 2 ** 31
    # The whole record travels over XML-RPC: it must be well-formed XML.
    body = xmlrpc.client.dumps(({"studies": [record]},), "m", allow_none=True)
    xml.parsers.expat.ParserCreate().Parse(body.encode("utf-8"), True)

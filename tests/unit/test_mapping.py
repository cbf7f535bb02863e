import pytest
from hypothesis import given, settings, strategies as st

from orthanc_gnuhealth_plugin.mapping import (
    dicom_date, dicom_time, integer, map_study, text, uid)

# GET /studies/{id}, /studies/{id}/series, /studies/{id}/instances of
# pydicom's CT_small.dcm, as answered by Orthanc 1.10.1.
STUDY = {
    "ID": "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d",
    "IsStable": True,
    "LastUpdate": "20261128T152119",
    "MainDicomTags": {
        "AccessionNumber": "", "InstitutionName": "JFK IMAGING CENTER",
        "ReferringPhysicianName": "", "StudyDate": "20040119", "StudyDescription": "e+1",
        "StudyID": "1CT1", "StudyInstanceUID": "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
        "StudyTime": "072730"},
    "ParentPatient": "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718",
    "PatientMainDicomTags": {"PatientBirthDate": "", "PatientID": "1CT1",
                             "PatientName": "CompressedSamples^CT1", "PatientSex": "O"},
    "Series": ["93034833-163e42c3-bc9a428b-194620cf-2c5799e5"],
    "Type": "Study",
}
SERIES = [{
    "ExpectedNumberOfInstances": None,
    "ID": "93034833-163e42c3-bc9a428b-194620cf-2c5799e5",
    "Instances": ["f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af"],
    "IsStable": True, "LastUpdate": "20261128T152119",
    "MainDicomTags": {
        "ContrastBolusAgent": "ISOVUE300/100", "Manufacturer": "GE MEDICAL SYSTEMS",
        "Modality": "CT", "SeriesDate": "19970430",
        "SeriesInstanceUID": "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322",
        "SeriesNumber": "1", "SeriesTime": "112749", "StationName": "CT01_OC0"},
    "ParentStudy": "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d",
    "Status": "Unknown", "Type": "Series",
}]
INSTANCES = [{
    "FileSize": 39068, "FileUuid": "65eb387a-1d29-4a14-882f-38f437056511",
    "ID": "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af", "IndexInSeries": 1,
    "MainDicomTags": {"AcquisitionNumber": "2", "InstanceNumber": "1",
                      "SOPInstanceUID": "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"},
    "ParentSeries": "93034833-163e42c3-bc9a428b-194620cf-2c5799e5", "Type": "Instance",
}]


def test_real_orthanc_study():
    assert map_study(STUDY, SERIES, INSTANCES) == {
        "orthanc_id": "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d",
        "study_uid": "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
        "accession": None,
        "study_id": "1CT1",
        "study_date": "2004-01-19",
        "study_time": "07:27:30",
        "description": "e+1",
        "institution": "JFK IMAGING CENTER",
        "referring_physician": None,
        "dicom_patient_id": "1CT1",
        "dicom_patient_name": "CompressedSamples^CT1",
        "dicom_patient_birth_date": None,
        "dicom_patient_sex": "O",
        "accession_issuer": None,
        "modalities": "CT",
        "complete": True,
        "last_update": "20261128T152119",  # the study's LastUpdate above
        "series": [{
            "orthanc_id": "93034833-163e42c3-bc9a428b-194620cf-2c5799e5",
            "series_uid": "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322",
            "modality": "CT",
            "number": 1,
            "description": None,
            "body_part": None,
            "series_date": "1997-04-30",
            "instances": [{
                "orthanc_id": "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af",
                "sop_instance_uid": "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
                "number": 1,
            }],
        }],
    }


@pytest.mark.parametrize("value, expected", [
    ("20240229", "2024-02-29"), (" 20240101 ", "2024-01-01"), ("20241345", None),
    ("20230229", None), ("2024", None), ("", None), (None, None), ("2024-01-01", None),
    ("２０２４０１０１", None), (20240101, None),
])
def test_dates(value, expected):
    assert dicom_date(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("072730", "07:27:30"), ("072730.123456", "07:27:30"), ("0727", "07:27:00"),
    ("07", "07:00:00"), ("235960", "23:59:59"), ("2461", None), ("2400", None),
    ("7", None), ("07:27:30", None), ("", None), (None, None), ("abcdef", None),
])
def test_times(value, expected):
    assert dicom_time(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("  3 ", 3), ("3.0", 3), ("-2", -2), ("abc", None), ("3.5", None), ("", None),
    (None, None), ("nan", None), ("1e400", None), ("99999999999", None),
])
def test_integers(value, expected):
    assert integer(value) == expected


def test_uids_lose_padding_and_are_never_cut():
    assert uid(" 1.2.3\x00") == "1.2.3"
    assert uid("1.2. 3 ") == "1.2.3"
    # Cutting could merge two studies: GNU Health refuses it, named, instead.
    assert len(uid("1." * 100)) == 200
    assert uid("\x00 ") is None


def test_text_keeps_non_ascii_and_is_capped():
    assert text(" Müller^Zoë 山田 ") == "Müller^Zoë 山田"
    assert len(text("x" * 5000)) == 1000
    assert text("x" * 999 + " y") == "x" * 999
    assert text(["not", "a", "string"]) is None


def test_modalities_are_sorted_and_distinct():
    series = [dict(SERIES[0], ID=f"s{n}", MainDicomTags={"Modality": m, "SeriesNumber": str(n)})
              for n, m in enumerate(["MR", "CT", "MR", " ", "SR"])]
    record = map_study(STUDY, series, [])
    assert record["modalities"] == "CT MR SR"
    assert [s["number"] for s in record["series"]] == [0, 1, 2, 3, 4]


def test_instances_go_under_their_series_sorted_by_number():
    series = [dict(SERIES[0], ID="a"), dict(SERIES[0], ID="b")]
    instances = [
        {"ID": "i3", "ParentSeries": "a", "MainDicomTags": {"InstanceNumber": "10", "SOPInstanceUID": "3"}},
        {"ID": "i1", "ParentSeries": "a", "MainDicomTags": {"InstanceNumber": "2", "SOPInstanceUID": "1"}},
        {"ID": "i0", "ParentSeries": "a", "MainDicomTags": {"SOPInstanceUID": "0"}},
        {"ID": "i2", "ParentSeries": "b", "MainDicomTags": {"InstanceNumber": "1", "SOPInstanceUID": "2"}},
    ]
    record = map_study(STUDY, series, instances)
    assert [[i["orthanc_id"] for i in s["instances"]] for s in record["series"]] == [
        ["i1", "i3", "i0"], ["i2"]]


def test_study_without_tags_or_children():
    record = map_study({"ID": "x"}, None, None)
    assert record["orthanc_id"] == "x"
    assert record["study_uid"] is None and record["series"] == []
    assert record["complete"] is False and record["modalities"] is None


TAG_VALUES = st.one_of(st.none(), st.text(), st.text(alphabet="0123456789. \x00:-+e"),
                       st.integers(), st.lists(st.text(), max_size=2))
TAGS = st.dictionaries(
    st.sampled_from(["StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber",
                     "StudyDescription", "SeriesInstanceUID", "SeriesNumber", "Modality",
                     "SeriesDate", "SOPInstanceUID", "InstanceNumber", "PatientID",
                     "PatientName", "PatientBirthDate", "PatientSex", "StudyID"]),
    TAG_VALUES)


def _check_uid(value):
    # Never cut (GNU Health refuses an over-long UID, naming the study), only
    # freed of DICOM's padding.
    assert value is None or (value and " " not in value and "\x00" not in value)


def _check_types(record):
    optional_str = ("accession", "study_id", "description", "institution",
                    "referring_physician", "dicom_patient_id", "dicom_patient_name",
                    "dicom_patient_sex", "modalities")
    _check_uid(record["study_uid"])
    for key in optional_str:
        assert record[key] is None or (isinstance(record[key], str) and record[key] == record[key].strip()
                                       and 0 < len(record[key]) <= 1000)
    for key in ("study_date", "dicom_patient_birth_date"):
        assert record[key] is None or (len(record[key]) == 10 and record[key][4] == "-")
    assert record["study_time"] is None or len(record["study_time"]) == 8
    assert isinstance(record["complete"], bool)
    for series in record["series"]:
        assert series["number"] is None or type(series["number"]) is int
        _check_uid(series["series_uid"])
        for instance in series["instances"]:
            assert instance["number"] is None or type(instance["number"]) is int
            _check_uid(instance["sop_instance_uid"])


@settings(max_examples=200, deadline=None)
@given(study_tags=TAGS, patient_tags=TAGS, series_tags=st.lists(TAGS, max_size=3),
       instance_tags=st.lists(TAGS, max_size=4), stable=st.one_of(st.booleans(), st.none()))
def test_mapping_never_raises_and_yields_the_documented_types(
        study_tags, patient_tags, series_tags, instance_tags, stable):
    series = [{"ID": f"s{n}", "MainDicomTags": tags} for n, tags in enumerate(series_tags)]
    instances = [{"ID": f"i{n}", "ParentSeries": f"s{n % 3}", "MainDicomTags": tags}
                 for n, tags in enumerate(instance_tags)]
    study = {"ID": "x", "IsStable": stable, "MainDicomTags": study_tags,
             "PatientMainDicomTags": patient_tags}
    _check_types(map_study(study, series, instances))


@given(st.text())
def test_scalar_parsers_never_raise(value):
    assert dicom_date(value) is None or len(dicom_date(value)) == 10
    assert dicom_time(value) is None or len(dicom_time(value)) == 8
    assert integer(value) is None or type(integer(value)) is int

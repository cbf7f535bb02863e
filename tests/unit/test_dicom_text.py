"""Decoding a study's text with pydicom where Orthanc 1.10.1 misreads it.

The raw bytes come from pydicom's own charset test files (chr*.dcm, written
by other people), served the way Orthanc's /instances/{id}/content/{tag}
serves them; expected values are written by hand or read by pydicom from
the same file.
"""
import json

import pydicom
import pytest
from pydicom.data import get_charset_files
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from orthanc_gnuhealth_plugin import dicom_text
from orthanc_gnuhealth_plugin.dicom_text import TextReader, charset_terms, decode, trusted
from orthanc_gnuhealth_plugin.mapping import map_study, person_name


def raw(dataset, tag):
    """The bytes of an element as the file holds them. pydicom converts
    SpecificCharacterSet while reading (it needs it); its ASCII terms are
    joined back."""
    element = dataset.get_item(Tag(tag))
    if element is None:
        return None
    if isinstance(element, RawDataElement):
        return element.value
    value = element.value
    return "\\".join(value if isinstance(value, MultiValue) else [value]).encode()


def charset_file(name):
    path, = get_charset_files(name)
    return path


class FileOrthanc:
    """Orthanc's raw reads over real files: instance id -> pydicom dataset
    (read raw, as Orthanc keeps the bytes); records every path read."""

    def __init__(self, **instances):
        self.instances = {i: pydicom.dcmread(path) for i, path in instances.items()}
        self.reads = []
        self.fail = False

    def read(self, path):
        self.reads.append(path)
        if self.fail:
            raise RuntimeError("Orthanc is restarting")
        _, _, instance_id, _, *tags = path.split("/")
        dataset = self.instances[instance_id]
        for n, tag in enumerate(tags):
            element = Tag(tag.replace("-", ""))
            if element not in dataset:
                return None
            if dictionary_VR(element) == "SQ":
                items = dataset[element].value
                index = int(tags[n + 1]) if n + 1 < len(tags) else None
                if index is None:
                    return json.dumps([str(i) for i in range(len(items))]).encode()
                if index >= len(items):
                    return None
                dataset = items[index]
                if n + 2 == len(tags):  # an item: Orthanc lists its tags
                    return json.dumps([f"{t.group:04x}-{t.element:04x}" for t in
                                       dataset.keys()]).encode()
                return self._next(dataset, tags[n + 2:])
            return raw(dataset, element)  # the bytes, padding kept
        return None

    def _next(self, dataset, tags):
        element = Tag(tags[0].replace("-", ""))
        return raw(dataset, element) if element in dataset else None


def study_json(orthanc_id="S1", accession="", **tags):
    """Orthanc's /studies/{id}, with its non-empty text tags."""
    patient = {"PatientName": tags.pop("PatientName", "x")}
    return {"ID": orthanc_id, "MainDicomTags": {"AccessionNumber": accession, **tags},
            "PatientMainDicomTags": patient}


def instances(*pairs):
    return [{"ID": i, "ParentSeries": s} for i, s in pairs]


def reader(orthanc, log=None, capacity=100):
    return TextReader(orthanc.read, log or (lambda level, line: None), capacity)


# ---- person names ----

@pytest.mark.parametrize("value, expected", [
    ("Wang^XiaoDong=王^小東=", "Wang^XiaoDong=王^小東"),
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    ("Yamada^Tarou==やまだ^たろう", "Yamada^Tarou==やまだ^たろう"),  # empty middle group kept
    ("Yamada^Tarou==", "Yamada^Tarou"),
    ("=山田^太郎", "=山田^太郎"),
    ("^^^^", "^^^^"),
    ("Doe^John ", "Doe^John"),
    ("==", None),
    ("", None),
    (None, None),
])
def test_person_names_lose_empty_trailing_groups_only(value, expected):
    assert person_name(value) == expected


# ---- the charset ----

@pytest.mark.parametrize("raw, terms, is_trusted", [
    (None, [], True),
    (b"ISO_IR 100", ["ISO_IR 100"], True),
    (b"ISO_IR 192", ["ISO_IR 192"], True),
    (b"GB18030 ", ["GB18030"], True),
    (b"\\ISO 2022 IR 87 ", ["", "ISO 2022 IR 87"], False),
    (b"ISO 2022 IR 6\\ISO 2022 IR 87", ["ISO 2022 IR 6", "ISO 2022 IR 87"], False),
    (b"ISO 2022 IR 13\\ISO 2022 IR 87", ["ISO 2022 IR 13", "ISO 2022 IR 87"], False),
    (b"\\ISO 2022 IR 149", ["", "ISO 2022 IR 149"], False),
    (b"ISO 2022 IR 100", ["ISO 2022 IR 100"], False),
    (b"ISO_IR 100\\ISO_IR 144", ["ISO_IR 100", "ISO_IR 144"], False),
])
def test_charset_terms_and_trust(raw, terms, is_trusted):
    assert charset_terms(raw) == terms
    assert trusted(terms) is is_trusted


@pytest.mark.parametrize("name, tag, vr, expected", [
    ("chrJapMulti.dcm", "0010-0010", "PN", "やまだ^たろう"),
    ("chrJapMultiExplicitIR6.dcm", "0010-0010", "PN", "やまだ^たろう"),
    ("chrH31.dcm", "0010-0010", "PN", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
    ("chrH32.dcm", "0010-0010", "PN", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),
    ("chrI2.dcm", "0010-0010", "PN", "Hong^Gildong=洪^吉洞=홍^길동"),
    ("chrKoreanMulti.dcm", "0010-0010", "PN", "김희중"),
    ("chrX1.dcm", "0010-0010", "PN", "Wang^XiaoDong=王^小東"),
    ("chrX2.dcm", "0010-0010", "PN", "Wang^XiaoDong=王^小东"),
    ("chrJapMulti.dcm", "0008-1030", "LO", "Chest"),
    ("chrJapMulti.dcm", "0008-103e", "LO", "Chest PA PA"),
])
def test_raw_values_decode_as_written_by_hand(name, tag, vr, expected):
    dataset = pydicom.dcmread(charset_file(name))
    value = raw(dataset, tag.replace("-", ""))
    assert decode(value, tag, vr, charset_terms(raw(dataset, 0x00080005))) == expected


@pytest.mark.parametrize("path", sorted(get_charset_files("chr*.dcm")))
def test_every_charset_file_decodes_as_pydicom_reads_it(path):
    dataset = pydicom.dcmread(path)
    terms = charset_terms(raw(dataset, 0x00080005))
    for keyword, vr in (("PatientName", "PN"), ("StudyDescription", "LO"),
                        ("SeriesDescription", "LO"), ("ReferringPhysicianName", "PN")):
        if keyword in dataset:
            element = Tag(tag_for_keyword(keyword))
            tag = f"{element.group:04x}-{element.element:04x}"
            assert decode(raw(dataset, element), tag, vr, terms) == str(pydicom.dcmread(path).get(keyword))


def test_multiple_values_are_joined_as_orthanc_joins_them():
    assert decode(b"Chest\\Abdomen ", "0008-1030", "LO", ["ISO_IR 100"]) == "Chest\\Abdomen"


# ---- the reader: reads, cache, cost ----

def test_trusted_charset_costs_one_read_and_keeps_orthancs_values():
    orthanc = FileOrthanc(I1=charset_file("chrFren.dcm"))
    text = reader(orthanc).study_text(study_json(PatientName="Buc^Jérôme"),
                                      instances(("I1", "SE1")))
    assert text.values == {} and text.series == {}
    assert orthanc.reads == ["/instances/I1/content/0008-0005"]


def test_an_accession_costs_one_more_read_for_its_issuer():
    orthanc = FileOrthanc(I1=charset_file("chrFren.dcm"))
    text = reader(orthanc).study_text(study_json(accession="001"), instances(("I1", "SE1")))
    assert text.values == {"accession_issuer": None}
    assert orthanc.reads == ["/instances/I1/content/0008-0005",
                             "/instances/I1/content/0008-0051/0"]


@pytest.mark.parametrize("item, expected", [
    ({"LocalNamespaceEntityID": "HOSP-RIS", "UniversalEntityID": "1.2.3"}, "HOSP-RIS"),
    ({"UniversalEntityID": "1.2.840.99", "UniversalEntityIDType": "ISO"}, "1.2.840.99"),
    ({"UniversalEntityIDType": "ISO"}, None),
])
def test_accession_issuer_local_else_universal(tmp_path, item, expected):
    dataset = pydicom.dcmread(charset_file("chrGerm.dcm"))
    issuer = Dataset()
    for keyword, value in item.items():
        setattr(issuer, keyword, value)
    dataset.AccessionNumber = "001"
    dataset.IssuerOfAccessionNumberSequence = [issuer]
    dataset.save_as(tmp_path / "issuer.dcm")
    orthanc = FileOrthanc(I1=tmp_path / "issuer.dcm")
    text = reader(orthanc).study_text(study_json(accession="001"), instances(("I1", "SE1")))
    assert text.values == {"accession_issuer": expected}


def test_iso_2022_study_is_read_from_one_instance_and_cached():
    path = charset_file("chrJapMultiExplicitIR6.dcm")
    orthanc = FileOrthanc(I1=path)
    study = study_json(PatientName="$B$d$^$@(B^$B$?$m$&(B", StudyDescription="Chest")
    text_reader = reader(orthanc)
    text = text_reader.study_text(study, instances(("I1", "SE1")))
    expected = pydicom.dcmread(path)
    assert text.values == {"dicom_patient_name": str(expected.PatientName),
                           "description": expected.StudyDescription}
    assert text.values["dicom_patient_name"] == "やまだ^たろう"
    assert text.series == {"SE1": "Chest PA PA"}
    # Orthanc reported no InstitutionName nor ReferringPhysicianName: not read.
    assert sorted(orthanc.reads) == ["/instances/I1/content/0008-0005",
                                     "/instances/I1/content/0008-1030",
                                     "/instances/I1/content/0008-103e",
                                     "/instances/I1/content/0010-0010"]
    orthanc.reads.clear()
    assert text_reader.study_text(study, instances(("I1", "SE1"))) == text
    assert orthanc.reads == []


def test_each_new_series_of_an_iso_2022_study_costs_one_instance_once():
    orthanc = FileOrthanc(I1=charset_file("chrJapMulti.dcm"),
                          I2=charset_file("chrKoreanMulti.dcm"),
                          I3=charset_file("chrKoreanMulti.dcm"),
                          I4=charset_file("chrGerm.dcm"))
    text_reader = reader(orthanc)
    study = study_json(PatientName="x")
    text_reader.study_text(study, instances(("I1", "SE1")))
    orthanc.reads.clear()
    text = text_reader.study_text(study, instances(("I1", "SE1"), ("I2", "SE2"),
                                                   ("I3", "SE2"), ("I4", "SE3")))
    assert text.series == {"SE1": "Chest PA PA", "SE2": "Chest PA PA"}  # SE3: Orthanc's
    assert orthanc.reads == ["/instances/I2/content/0008-0005",
                             "/instances/I2/content/0008-103e",
                             "/instances/I4/content/0008-0005"]
    orthanc.reads.clear()
    text_reader.study_text(study, instances(("I1", "SE1"), ("I2", "SE2"), ("I4", "SE3")))
    assert orthanc.reads == []


def test_the_cache_is_bounded_oldest_first():
    orthanc = FileOrthanc(I1=charset_file("chrFren.dcm"))
    text_reader = reader(orthanc, capacity=2)
    for study_id in ("S1", "S2", "S1", "S3"):  # S1 used again: S2 is the oldest
        text_reader.study_text(study_json(study_id), instances(("I1", "SE1")))
    orthanc.reads.clear()
    text_reader.study_text(study_json("S1"), instances(("I1", "SE1")))
    text_reader.study_text(study_json("S3"), instances(("I1", "SE1")))
    assert orthanc.reads == []
    text_reader.study_text(study_json("S2"), instances(("I1", "SE1")))
    assert orthanc.reads == ["/instances/I1/content/0008-0005"]


def test_without_instances_given_the_reader_lists_them_once():
    orthanc = FileOrthanc(I1=charset_file("chrH32.dcm"))
    calls = []

    def read(path):
        calls.append(path)
        if path == "/studies/S1/instances":
            return json.dumps(instances(("I1", "SE1"))).encode()
        return orthanc.read(path)
    text_reader = TextReader(read, lambda level, line: None)
    text = text_reader.study_text(study_json(PatientName="garbled"))
    assert text.values["dicom_patient_name"] == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
    assert calls[0] == "/studies/S1/instances"
    calls.clear()
    text_reader.study_text(study_json(PatientName="garbled"))
    assert calls == []


def test_a_failing_read_leaves_orthancs_values_and_is_retried():
    orthanc = FileOrthanc(I1=charset_file("chrH32.dcm"))
    lines = []
    text_reader = reader(orthanc, log=lambda level, line: lines.append((level, line)))
    orthanc.fail = True
    assert text_reader.study_text(study_json(PatientName="x"),
                                  instances(("I1", "SE1"))) is dicom_text.NOTHING
    assert lines and lines[0][0] == "warning" and "S1" in lines[0][1]
    orthanc.fail = False
    text = text_reader.study_text(study_json(PatientName="x"), instances(("I1", "SE1")))
    assert text.values["dicom_patient_name"] == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"


def test_a_study_without_instances_reads_nothing():
    orthanc = FileOrthanc()
    assert reader(orthanc).study_text(study_json(), []) is dicom_text.NOTHING
    assert orthanc.reads == []


# ---- the record ----

def test_decoded_values_replace_orthancs_in_the_record():
    study = {"ID": "S1", "MainDicomTags": {
        "StudyInstanceUID": "1.2", "StudyDescription": "$B;3(B", "InstitutionName": "$B0(B",
        "ReferringPhysicianName": "Dr=", "AccessionNumber": "001"},
        "PatientMainDicomTags": {"PatientName": "ﾔﾏﾀﾞ^ﾀﾛｳ=;3ED^B@O:=$d$^$@^$?$m$&"}}
    series = [{"ID": "SE1", "MainDicomTags": {"SeriesDescription": "$B(B"}},
              {"ID": "SE2", "MainDicomTags": {"SeriesDescription": "Scout"}}]
    decoded = dicom_text.StudyText(
        values={"dicom_patient_name": "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう=", "description": "胸部",
                "institution": "病院", "referring_physician": "医者^一郎=",
                "accession_issuer": "HOSP-RIS"},
        series={"SE1": "胸部 PA"})
    record = map_study(study, series, [], decoded)
    assert record["dicom_patient_name"] == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
    assert (record["description"], record["institution"]) == ("胸部", "病院")
    assert record["referring_physician"] == "医者^一郎"
    assert record["accession_issuer"] == "HOSP-RIS"
    assert {s["orthanc_id"]: s["description"] for s in record["series"]} == {
        "SE1": "胸部 PA", "SE2": "Scout"}


def test_orthancs_names_are_normalised_too():
    study = {"ID": "S1", "MainDicomTags": {"ReferringPhysicianName": "Li^Wei=="},
             "PatientMainDicomTags": {"PatientName": "Wang^XiaoDong=王^小東="}}
    record = map_study(study, [], [])
    assert record["dicom_patient_name"] == "Wang^XiaoDong=王^小東"
    assert record["referring_physician"] == "Li^Wei"
    assert record["accession_issuer"] is None

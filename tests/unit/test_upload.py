"""Uploads: unpacking with limits, reading, reconciliation, the whole import.

Real files: pydicom's CT_small.dcm and studies generated from it
(scripts/samples.py). The expected values come from those files.
"""
import gzip
import io
import sys
import tarfile
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from orthanc_gnuhealth_plugin import upload

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import samples  # noqa: E402

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))
CLAIM = {"id": 7, "patient_id": "GH123456", "patient_name": "Müller^Zoë",
         "birth_date": "19800229", "sex": "F", "accession": "001"}
LIMITS = upload.Limits(max_files=50, max_bytes=5 << 20)


def zip_of(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_of(members, mode="w:gz"):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeOrthanc:
    """POST /instances as Orthanc answers it: an instance is known by its
    patient, study, series and SOP Instance UIDs."""

    def __init__(self):
        self.instances = {}

    def store(self, data):
        ds = pydicom.dcmread(io.BytesIO(data))
        key = (ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        status = "AlreadyStored" if key in self.instances else "Success"
        self.instances.setdefault(key, ds)
        return {"Status": status, "ParentStudy": f"study-{ds.PatientID}-{ds.StudyInstanceUID}"}


# ---- unpacking ----

@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tgz", "gz", "dcm"])
def test_unpack_every_kind(tmp_path, kind):
    raw = CT_SMALL.read_bytes()
    data = {"zip": lambda: zip_of({"a/CT_small.dcm": raw}),
            "tar.gz": lambda: tar_of({"a/CT_small.dcm": raw}),
            "tgz": lambda: tar_of({"a/CT_small.dcm": raw}),
            "gz": lambda: gzip.compress(raw),
            "dcm": lambda: raw}[kind]()
    files = upload.unpack(data, f"cd.{kind}", tmp_path, LIMITS)
    assert len(files) == 1
    label, path = files[0]
    assert path.read_bytes() == raw
    assert path.parent == tmp_path


def test_no_path_escapes(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    raw = CT_SMALL.read_bytes()
    for data in [zip_of({"../../evil.dcm": raw, "/etc/evil.dcm": raw}),
                 tar_of({"../../evil.dcm": raw, "/tmp/evil.dcm": raw})]:
        files = upload.unpack(data, "cd.zip", folder, LIMITS)
        # The member names are labels only: every file is in the folder.
        assert len(files) == 2 and all(path.parent == folder for _, path in files)
    assert sorted(p.name for p in tmp_path.rglob("*evil*")) == []


def test_tar_links_are_never_followed(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        link = tarfile.TarInfo("cd/passwd.dcm")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    files = upload.unpack(buffer.getvalue(), "cd.tar", tmp_path, LIMITS)
    assert files == [("cd.tar/cd/passwd.dcm", None, "not a regular file")]
    assert list(tmp_path.iterdir()) == []


def test_zip_bomb_fails_cleanly(tmp_path):
    # 6 MB of zeros compress to a few kB: over the 5 MB limit when unpacked.
    bomb = zip_of({"zeros.dcm": b"\0" * (6 << 20)})
    assert len(bomb) < 50_000
    with pytest.raises(upload.UploadRefused, match="more than 5 MB"):
        upload.unpack(bomb, "bomb.zip", tmp_path, LIMITS)
    # The gzip of a tar is bounded the same way.
    with pytest.raises(upload.UploadRefused, match="MaxTotalMegabytes"):
        upload.unpack(gzip.compress(b"\0" * (6 << 20)), "bomb.gz", tmp_path, LIMITS)


def test_too_many_files(tmp_path):
    data = zip_of({f"{i}.dcm": b"x" for i in range(LIMITS.max_files + 1)})
    with pytest.raises(upload.UploadRefused, match="MaxFiles"):
        upload.unpack(data, "many.zip", tmp_path, LIMITS)


def test_corrupt_archive(tmp_path):
    data = zip_of({"CT_small.dcm": CT_SMALL.read_bytes()})
    with pytest.raises(upload.UploadRefused, match="not a readable archive"):
        upload.unpack(data[:len(data) // 2], "cut.zip", tmp_path, LIMITS)


# ---- reading ----

def test_read_skips_and_fails_with_reasons(tmp_path):
    raw = CT_SMALL.read_bytes()
    (tmp_path / "text").write_text("hello")
    (tmp_path / "cut").write_bytes(raw[:20000])
    ds = pydicom.dcmread(CT_SMALL)
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5"
    ds.save_as(tmp_path / "syntax", enforce_file_format=False)
    assert upload.read(tmp_path / "text")[1] == ("skipped", "not a DICOM file")
    assert upload.read(get_testdata_file("DICOMDIR"))[1] == (
        "skipped", "DICOMDIR (the index of a CD)")
    outcome, reason = upload.read(tmp_path / "cut")[1]
    assert outcome == "failed" and "truncated" in reason and "(7FE0,0010)" in reason
    assert upload.read(tmp_path / "syntax")[1] == (
        "failed", "unsupported transfer syntax 1.2.3.4.5")
    dataset, problem = upload.read(CT_SMALL)
    assert problem is None and dataset.SOPInstanceUID == pydicom.dcmread(CT_SMALL).SOPInstanceUID


# ---- reconciliation ----

def test_reconcile_rewrites_identity_and_keeps_uids():
    original = pydicom.dcmread(CT_SMALL)
    ds = pydicom.dcmread(CT_SMALL)
    ds.IssuerOfPatientID = "OTHER-HOSPITAL"
    ds.AccessionNumber = "ELSEWHERE-9"
    upload.reconcile(ds, CLAIM)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    written = pydicom.dcmread(io.BytesIO(buffer.getvalue()))
    assert written.PatientID == "GH123456"
    assert str(written.PatientName) == "Müller^Zoë"
    assert (written.PatientBirthDate, written.PatientSex) == ("19800229", "F")
    assert written.AccessionNumber == "001"
    assert "IssuerOfPatientID" not in written
    *kept, other = written.OtherPatientIDsSequence
    assert [o.PatientID for o in kept] == [
        o.PatientID for o in original.OtherPatientIDsSequence]
    assert (other.PatientID, other.IssuerOfPatientID) == (original.PatientID, "OTHER-HOSPITAL")
    for keyword in ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]:
        assert written[keyword].value == original[keyword].value
    assert written.PixelData == original.PixelData
    # Text the file had, in its own character set, reads the same in UTF-8.
    assert written.SpecificCharacterSet == "ISO_IR 192"
    assert written.StudyDescription == original.get("StudyDescription")


def test_reconcile_keeps_latin1_text(tmp_path):
    ds = pydicom.dcmread(CT_SMALL)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ReferringPhysicianName = "Gödel^Kurt"
    ds.StudyDescription = "Thorax, vue générale"
    ds.save_as(tmp_path / "latin1.dcm", enforce_file_format=True)
    assert "Gödel".encode("latin-1") in (tmp_path / "latin1.dcm").read_bytes()
    ds = pydicom.dcmread(tmp_path / "latin1.dcm")
    upload.reconcile(ds, CLAIM)
    upload.reconcile(ds, CLAIM)  # a retry reconciles an already reconciled file
    ds.save_as(tmp_path / "utf8.dcm", enforce_file_format=True)
    raw = (tmp_path / "utf8.dcm").read_bytes()
    assert "Gödel".encode() in raw and "Müller^Zoë".encode() in raw
    written = pydicom.dcmread(tmp_path / "utf8.dcm")
    assert str(written.ReferringPhysicianName) == "Gödel^Kurt"
    assert written.StudyDescription == "Thorax, vue générale"


def test_reconcile_without_order_drops_the_outside_accession():
    ds = pydicom.dcmread(CT_SMALL)
    ds.AccessionNumber = "001"  # another hospital's "001" is not our order
    upload.reconcile(ds, {**CLAIM, "accession": ""})
    assert ds.AccessionNumber == ""


def test_reconcile_twice_keeps_one_other_id():
    ds = pydicom.dcmread(CT_SMALL)
    upload.reconcile(ds, CLAIM)
    upload.reconcile(ds, CLAIM)
    original = pydicom.dcmread(CT_SMALL)
    assert [o.PatientID for o in ds.OtherPatientIDsSequence] == [
        o.PatientID for o in original.OtherPatientIDsSequence] + [original.PatientID]


# ---- the whole import ----

def study_zip(tmp_path, **members):
    files = {"CT_small.dcm": CT_SMALL.read_bytes()}
    for path in samples.generate_study(tmp_path / "gen", series=2, instances=2,
                                       PatientID="FOREIGN-1", IssuerOfPatientID="ELSEWHERE"):
        files[f"gen/{path.name}"] = path.read_bytes()
    files.update(members)
    return zip_of(files)


def test_import_mixed_patients_refused(tmp_path):
    orthanc = FakeOrthanc()
    claim = {**CLAIM, "filename": "cd.zip", "data": study_zip(tmp_path)}
    (tmp_path / "a").mkdir()
    result = upload.import_upload(claim, tmp_path / "a", orthanc.store, LIMITS)
    assert result["state"] == "failed"
    # Both outside IDs are named: CT_small's own and the generated one's.
    assert pydicom.dcmread(CT_SMALL).PatientID in result["message"]
    assert "FOREIGN-1 (issuer ELSEWHERE)" in result["message"]
    assert orthanc.instances == {}


def test_import_stores_reconciled_and_is_idempotent(tmp_path):
    orthanc = FakeOrthanc()
    paths = samples.generate_study(tmp_path / "gen", series=2, instances=2,
                                   PatientID="FOREIGN-1")
    members = {f"cd/{p.name}": p.read_bytes() for p in paths}
    members.update({"cd/DICOMDIR.txt": b"not dicom",
                    "cd/cut.dcm": CT_SMALL.read_bytes()[:20000]})
    claim = {**CLAIM, "filename": "cd.zip", "data": zip_of(members)}
    (tmp_path / "a").mkdir()
    result = upload.import_upload(claim, tmp_path / "a", orthanc.store, LIMITS)
    assert (result["state"], result["stored"], result["skipped"], result["failed"]) == (
        "done", 4, 1, 1)
    assert len(orthanc.instances) == 4
    study_uid = pydicom.dcmread(paths[0]).StudyInstanceUID
    assert result["studies"] == [f"study-GH123456-{study_uid}"]
    assert {k[3] for k in orthanc.instances} == {
        pydicom.dcmread(p).SOPInstanceUID for p in paths}
    assert "cd/cut.dcm: failed (truncated" in result["results"]
    # The same archive again: everything is already there.
    (tmp_path / "b").mkdir()
    again = upload.import_upload(claim, tmp_path / "b", orthanc.store, LIMITS)
    assert (again["state"], again["stored"], again["skipped"]) == ("done", 0, 5)
    assert len(orthanc.instances) == 4


def test_import_without_reconciliation_keeps_the_files(tmp_path):
    orthanc = FakeOrthanc()
    claim = {**CLAIM, "filename": "CT_small.dcm", "data": CT_SMALL.read_bytes()}
    result = upload.import_upload(claim, tmp_path, orthanc.store, LIMITS, reconciling=False)
    assert result["stored"] == 1
    (stored,) = orthanc.instances.values()
    assert stored.PatientID == pydicom.dcmread(CT_SMALL).PatientID


def test_import_nothing_storable_fails(tmp_path):
    claim = {**CLAIM, "filename": "junk.zip",
             "data": zip_of({"a.txt": b"hello", "b.dcm": CT_SMALL.read_bytes()[:20000]})}
    result = upload.import_upload(claim, tmp_path, FakeOrthanc().store, LIMITS)
    assert (result["state"], result["stored"], result["skipped"], result["failed"]) == (
        "failed", 0, 1, 1)
    assert "a.txt: skipped (not a DICOM file)" in result["results"]

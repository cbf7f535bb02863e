"""The worker imports uploads: claims one at a time, stores, reports; the
usual sync then pushes the stored study."""
import zipfile
import io
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from orthanc_gnuhealth_plugin.config import UploadSettings
from orthanc_gnuhealth_plugin.errors import NotSupported
from orthanc_gnuhealth_plugin.sync import SyncWorker

from fakes import FakeClock, FakeGnuHealth, FakeOrthanc, Log, settings

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))


def claim(upload_id, data, filename="cd.zip"):
    return {"id": upload_id, "filename": filename, "data": data,
            "patient_id": "GH0001", "patient_name": "Doe^Jane", "birth_date": "19700101",
            "sex": "F", "accession": ""}


def zipped(*paths):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in paths:
            archive.write(path, Path(path).name)
    return buffer.getvalue()


def worker(orthanc, gnuhealth, clock, log, **uploads):
    return SyncWorker(settings(uploads=UploadSettings(**{"interval": 30, **uploads})),
                      orthanc, gnuhealth, log, clock=clock)


def test_upload_claimed_stored_reported_and_pushed():
    orthanc, gnuhealth, clock, log = FakeOrthanc(), FakeGnuHealth(), FakeClock(), Log()
    gnuhealth.uploads = [claim(1, zipped(CT_SMALL)), claim(2, b"not dicom", "a.txt")]
    sync = worker(orthanc, gnuhealth, clock, log)

    while sync.run_once():
        pass
    original = pydicom.dcmread(CT_SMALL)
    stored, = orthanc.stored_files
    assert (stored.PatientID, stored.SOPInstanceUID) == ("GH0001", original.SOPInstanceUID)
    assert gnuhealth.finished[1]["state"] == "done" and gnuhealth.finished[1]["stored"] == 1
    assert gnuhealth.finished[2]["state"] == "failed"
    assert gnuhealth.finished[2]["results"] == "a.txt: skipped (not a DICOM file)"
    # One node, one name, one upload per claim.
    assert gnuhealth.claims == ["orthanc@" + gnuhealth.claims[0].split("@")[1]] * 3
    assert gnuhealth.claims[0].endswith(":8042")
    # The stored study went to GNU Health by the usual push.
    assert original.StudyInstanceUID in gnuhealth.pushed_uids()
    assert sync.status.get("last_upload")["id"] == 2
    assert any("upload 1 (cd.zip) done" in line for line in log.at("info"))

    # Nothing more until Uploads.Interval has passed.
    sync.run_once()
    assert len(gnuhealth.claims) == 3
    clock.advance(30)
    sync.run_once()
    assert len(gnuhealth.claims) == 4


def test_uploads_off_without_the_rpc():
    orthanc, gnuhealth, clock, log = FakeOrthanc(), FakeGnuHealth(), FakeClock(), Log()

    def refuse(node, limit):
        raise NotSupported("no model gnuhealth.radiology.upload")
    gnuhealth.claim_uploads = refuse
    sync = worker(orthanc, gnuhealth, clock, log)
    sync.run_once()
    clock.advance(60)
    sync.run_once()
    warnings = [line for line in log.at("warning") if "uploads" in line]
    assert len(warnings) == 1 and "no model gnuhealth.radiology.upload" in warnings[0]


def test_uploads_interval_zero_never_claims():
    orthanc, gnuhealth, clock, log = FakeOrthanc(), FakeGnuHealth(), FakeClock(), Log()
    gnuhealth.uploads = [claim(1, zipped(CT_SMALL))]
    sync = worker(orthanc, gnuhealth, clock, log, interval=0)
    sync.run_once()
    assert gnuhealth.claims == [] and orthanc.stored_files == []

"""Outside images uploaded in GNU Health: unpack, read, reconcile, store.

Plain functions; the store is injected (`store(bytes) -> Orthanc's answer
to POST /instances`), so unit tests need no Orthanc.

- Unpacking (`unpack`) writes every member under a name of its own
  (000001, 000002...) in a temporary folder: a member's path is only its
  label in the report, so no name can escape the folder. The number of
  files and the total uncompressed size are counted while reading, not
  taken from the archive's headers, so a zip bomb stops at the limit.
- Each file is read with pydicom (`read`): DICOMDIR and non-DICOM files are
  skipped with a reason, truncated files and unknown transfer syntaxes fail
  with one.
- Reconciliation (IHE Import Reconciliation Workflow, `reconcile`): the
  patient's identity becomes GNU Health's, the outside PatientID goes to
  OtherPatientIDsSequence with its issuer, every UID stays, and the
  accession stays only if it is the order the upload was made for.
- An upload whose files name two outside patients is refused whole: staff
  must look at it, we never guess.
"""
import gzip
import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_CHUNK = 1 << 20
# Tags of the outside identity that would contradict the new one.
_OUTSIDE_ISSUER_TAGS = ("IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence")
_UNDEFINED_LENGTH = 0xFFFFFFFF


class UploadRefused(Exception):
    """The whole upload is refused; the message says why, for staff."""


@dataclass(frozen=True)
class Limits:
    max_files: int = 10000
    max_bytes: int = 4096 << 20


@dataclass
class Report:
    """What became of each file, for the upload's record in GNU Health."""
    stored: int = 0
    skipped: int = 0
    failed: int = 0

    def __post_init__(self):
        self.lines = []
        self.studies = set()

    def add(self, outcome, name, reason=""):
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.lines.append(f"{name}: {outcome}" + (f" ({reason})" if reason else ""))

    def result(self, refused=None):
        if refused:
            state, message = "failed", refused
        elif self.studies:  # some instance is in the PACS: stored now or before
            state = "done"
            message = (f"{self.stored} instance(s) stored, {self.skipped} skipped, "
                       f"{self.failed} failed")
        else:
            state, message = "failed", "no DICOM instance could be stored"
        return {"state": state, "message": message, "stored": self.stored,
                "skipped": self.skipped, "failed": self.failed,
                "results": "\n".join(self.lines), "studies": sorted(self.studies)}


# ---- unpacking ----

class _Writer:
    """Writes the members into `folder`, counting files and bytes."""

    def __init__(self, folder, limits):
        self._folder = folder
        self._limits = limits
        self._bytes = 0
        self.files = []  # (label, path)

    def add(self, label, source):
        if len(self.files) >= self._limits.max_files:
            raise UploadRefused(f"more than {self._limits.max_files} files in the upload "
                                f"(GnuHealth.Uploads.MaxFiles)")
        path = self._folder / f"{len(self.files) + 1:06d}"
        with open(path, "wb") as target:
            while True:
                chunk = source.read(_CHUNK)
                if not chunk:
                    break
                self._bytes += len(chunk)
                if self._bytes > self._limits.max_bytes:
                    raise UploadRefused(
                        f"the upload unpacks to more than {self._limits.max_bytes >> 20} MB "
                        f"(GnuHealth.Uploads.MaxTotalMegabytes)")
                target.write(chunk)
        self.files.append((label, path))


def unpack(data, filename, folder, limits):
    """The files of an upload as [(label, path)] in `folder` (a Path), and
    (label, None, reason) for a member that is not read (a link, a bad CRC).

    A .zip, a .tar (.tar.gz, .tgz), a .gz of one file, or one file as is.
    Raises UploadRefused for an archive that cannot be read, or past a limit.
    """
    writer = _Writer(folder, limits)
    name = PurePosixPath(filename or "upload").name
    try:
        if data[:4] == b"PK\x03\x04":
            _unpack_zip(data, name, writer)
        elif data[:2] == b"\x1f\x8b":
            # .gz of a tar or of one file: gunzip first, within the limits.
            inner = PurePosixPath(name)
            inner = inner.stem + (".tar" if inner.suffix == ".tgz" else "")
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as source:
                writer.add(inner, source)
            label, path = writer.files[-1]
            if tarfile.is_tarfile(path):
                # Out of the way of the members' names, and of the count.
                writer.files.pop()
                tar = path.rename(path.with_name("archive.tar"))
                _unpack_tar(tar, label, writer)
                tar.unlink()
        elif _is_tar(data):
            _unpack_tar(io.BytesIO(data), name, writer)
        else:
            writer.add(name, io.BytesIO(data))
    except (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, EOFError,
            OSError, ValueError) as error:
        raise UploadRefused(f"{name}: not a readable archive ({error})") from None
    return writer.files


def _is_tar(data):
    return len(data) > 262 and data[257:262] == b"ustar"


def _unpack_zip(data, name, writer):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            try:
                with archive.open(member) as source:
                    writer.add(f"{name}/{member.filename}", source)
            except (zipfile.BadZipFile, RuntimeError) as error:  # one bad member (CRC,
                # encrypted), not the whole archive
                writer.files.append((f"{name}/{member.filename}", None, str(error)))


def _unpack_tar(source, name, writer):
    opened = tarfile.open(source, "r:") if not hasattr(source, "read") \
        else tarfile.open(fileobj=source, mode="r:")
    with opened as archive:
        for member in archive:
            if member.isreg():
                writer.add(f"{name}/{member.name}", archive.extractfile(member))
            elif not member.isdir():
                # Links and devices are never followed nor made.
                writer.files.append((f"{name}/{member.name}", None, "not a regular file"))


# ---- reading ----

def read(path):
    """(dataset, None) for a DICOM instance to store, else (None, (outcome,
    reason)) with outcome "skipped" or "failed"."""
    try:
        dataset = pydicom.dcmread(path)
    except InvalidDicomError:
        return None, ("skipped", "not a DICOM file")
    except Exception as error:  # pydicom raises many kinds on bad input
        return None, ("failed", f"unreadable DICOM: {error}")
    meta = dataset.get("file_meta", Dataset())
    if meta.get("MediaStorageSOPClassUID") == DICOMDIR_CLASS:
        return None, ("skipped", "DICOMDIR (the index of a CD)")
    syntax = meta.get("TransferSyntaxUID")
    if syntax and not UID(syntax).is_transfer_syntax:
        return None, ("failed", f"unsupported transfer syntax {syntax}")
    short = _truncated(dataset)
    if short:
        return None, ("failed", f"truncated file (element {short} cut short)")
    missing = [k for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
               if not dataset.get(k)]
    if missing:
        return None, ("failed", "no " + ", ".join(missing))
    return dataset, None


def _truncated(dataset):
    """The tag of the first top-level element whose value is shorter than
    its declared length: pydicom stops quietly at the end of a cut file."""
    for tag in dataset.keys():
        raw = dataset.get_item(tag)
        length = getattr(raw, "length", None)
        if (length not in (None, _UNDEFINED_LENGTH) and isinstance(raw.value, bytes)
                and len(raw.value) < length):
            return tag
    return None


def outside_patient(dataset, own_id):
    """The outside PatientID with its issuer, as one label; "" when the
    file has none or already has the patient's own `own_id`."""
    patient_id = str(dataset.get("PatientID", "") or "").strip()
    issuer = str(dataset.get("IssuerOfPatientID", "") or "").strip()
    if not patient_id or patient_id == own_id:
        return ""
    return f"{patient_id} (issuer {issuer})" if issuer else patient_id


# ---- reconciliation ----

def reconcile(dataset, claim):
    """Give `dataset` the identity of GNU Health's patient in `claim`.

    claim: {"patient_id", "patient_name", "birth_date", "sex",
    "accession" (the order's code, or "")}.
    """
    outside_id = str(dataset.get("PatientID", "") or "").strip()
    if outside_id and outside_id != claim["patient_id"]:
        _keep_other_id(dataset, outside_id, str(dataset.get("IssuerOfPatientID", "") or ""))
    for keyword in _OUTSIDE_ISSUER_TAGS:
        if keyword in dataset:
            delattr(dataset, keyword)
    new_values = {"PatientID": claim["patient_id"], "PatientName": claim["patient_name"],
                  "PatientBirthDate": claim["birth_date"], "PatientSex": claim["sex"]}
    if dataset.get("AccessionNumber", "") != claim["accession"]:
        # Another hospital's accession is no order of ours.
        new_values["AccessionNumber"] = claim["accession"]
        if "IssuerOfAccessionNumberSequence" in dataset:
            del dataset.IssuerOfAccessionNumberSequence
    if not all(str(v).isascii() for v in new_values.values()):
        _to_utf8(dataset)
    for keyword, value in new_values.items():
        setattr(dataset, keyword, value)


def _to_utf8(dataset):
    """Declare UTF-8, the text already there reading the same: pydicom
    decodes it with the file's character set, and a person name forgets
    the bytes it came from (it would write them again as they were)."""
    if dataset.get("SpecificCharacterSet") == "ISO_IR 192":
        return  # decoding again would read the names' old bytes as UTF-8
    dataset.decode()

    def plain_names(_, element):
        if element.VR == "PN" and element.value:
            element.value = ([str(v) for v in element.value] if element.VM > 1
                             else str(element.value))
    dataset.walk(plain_names)
    dataset.SpecificCharacterSet = "ISO_IR 192"


def _keep_other_id(dataset, patient_id, issuer):
    others = list(dataset.get("OtherPatientIDsSequence", []))
    if any(str(o.get("PatientID", "")) == patient_id
           and str(o.get("IssuerOfPatientID", "")) == issuer for o in others):
        return
    item = Dataset()
    item.PatientID = patient_id
    if issuer:
        item.IssuerOfPatientID = issuer
    item.TypeOfPatientID = "TEXT"
    dataset.OtherPatientIDsSequence = others + [item]


# ---- the whole import ----

def import_upload(claim, folder, store, limits, reconciling=True):
    """Import the upload `claim` (from GNU Health's claim_uploads) into
    Orthanc through `store`; returns the result for finish_upload.

    Nothing is stored until every file was read and the upload names at
    most one outside patient. A file Orthanc has already (same
    SOPInstanceUID under the same patient) is skipped, so a retry or a
    second upload of the same CD never duplicates anything.
    """
    report = Report()
    try:
        files = unpack(claim["data"], claim["filename"], folder, limits)
    except UploadRefused as error:
        return report.result(refused=str(error))
    to_store, patients = [], {}
    for label, path, *reason in files:
        dataset, problem = read(path) if path else (None, ("failed", reason[0]))
        if problem:
            report.add(problem[0], label, problem[1])
            continue
        outside = outside_patient(dataset, claim["patient_id"])
        if outside:
            patients.setdefault(outside, label)
        to_store.append((label, path))
        del dataset  # read again when stored: memory stays one file
    if len(patients) > 1:
        named = ", ".join(f"{p} in {label}" for p, label in sorted(patients.items()))
        return report.result(refused=f"the upload holds images of more than one outside "
                                     f"patient: {named}; nothing was stored")
    for label, path in to_store:
        _store_one(label, path, claim, store, report, reconciling)
    return report.result()


def _store_one(label, path, claim, store, report, reconciling):
    dataset, _ = read(path)
    if reconciling:
        reconcile(dataset, claim)
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    try:
        answer = store(buffer.getvalue())
    except Exception as error:  # Orthanc refused this file; the others go on
        report.add("failed", label, f"Orthanc refused it: {error}")
        return
    report.studies.add(answer["ParentStudy"])
    if answer.get("Status") == "AlreadyStored":
        report.add("skipped", label, "already in the PACS")
    else:
        report.add("stored", label)


"""A study's text values as pydicom reads them, where Orthanc misreads them.

Orthanc 1.10.1 decodes a value with the first non-empty term of
SpecificCharacterSet (0008,0005) and ignores ISO 2022 code extensions, so a
study in "ISO 2022 IR 6\\ISO 2022 IR 87" shows `$B$d$^$@(B^$B$?$m$&(B`
for やまだ^たろう, and one in "ISO 2022 IR 13\\ISO 2022 IR 87" shows
`;3ED^B@O:` for 山田^太郎 (pydicom's chrJapMultiExplicitIR6.dcm and
chrH32.dcm). pydicom, which the plugin already uses, reads them right.

So, once per Orthanc study (the answer is cached, bounded):
- one tag read learns the charset of the study's first instance
  (`/instances/{id}/content/0008-0005`, raw bytes);
- if the study has an AccessionNumber, one more reads the first item of
  IssuerOfAccessionNumberSequence (0008,0051) (a 404 when absent, which is
  the usual case);
- only if the charset is one Orthanc cannot be trusted with (multi-valued,
  ISO 2022, or not a single term Orthanc 1.10.1 decodes as pydicom does),
  the raw bytes of the text tags Orthanc reported non-empty are read from
  that same instance and decoded by pydicom; each other series of the study
  costs one charset read and one SeriesDescription read of its first instance.

Orthanc answers these `content` reads from its cache of parsed files. A
study without SpecificCharacterSet keeps Orthanc's reading (its
DefaultEncoding, the administrator's choice). Known limit: in a study whose
first instance has a trusted charset, a series from another modality in
ISO 2022 keeps Orthanc's SeriesDescription.
"""
import json
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

# Single-valued SpecificCharacterSet terms Orthanc 1.10.1 decodes as pydicom
# does (checked with pydicom's chr*.dcm files; see docs/operations.md).
TRUSTED_CHARSETS = frozenset({
    "ISO_IR 6", "ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 126",
    "ISO_IR 127", "ISO_IR 138", "ISO_IR 144", "ISO_IR 148", "ISO_IR 166", "ISO_IR 13",
    "ISO_IR 192", "GB18030", "GBK"})
CHARSET_TAG = "0008-0005"
ISSUER_ITEM = "0008-0051/0"
# Issuer of the accession: LocalNamespaceEntityID, else UniversalEntityID.
ISSUER_TAGS = ("0040-0031", "0040-0032")
# Record key -> (tag, VR, where Orthanc's JSON has it).
STUDY_TAGS = MappingProxyType({
    "dicom_patient_name": ("0010-0010", "PN", "PatientMainDicomTags", "PatientName"),
    "description": ("0008-1030", "LO", "MainDicomTags", "StudyDescription"),
    "institution": ("0008-0080", "LO", "MainDicomTags", "InstitutionName"),
    "referring_physician": ("0008-0090", "PN", "MainDicomTags", "ReferringPhysicianName"),
})
SERIES_DESCRIPTION = ("0008-103e", "LO")
CACHE_SIZE = 10000


@dataclass(frozen=True)
class StudyText:
    """What mapping.map_study takes instead of Orthanc's JSON: `values` by
    record key (only the keys read here), `series`: series Orthanc id ->
    its decoded SeriesDescription (only the series decoded here)."""
    values: Mapping = field(default_factory=dict)
    series: Mapping = field(default_factory=dict)


NOTHING = StudyText()


def charset_terms(raw):
    """b"\\\\ISO 2022 IR 87 " -> ["", "ISO 2022 IR 87"]; None (absent) -> []."""
    if not raw:
        return []
    return [term.strip(" \x00") for term in raw.decode("ascii", "replace").split("\\")]


def trusted(terms):
    """Whether Orthanc's JSON already holds what pydicom reads."""
    return not terms or (len(terms) == 1 and terms[0] in TRUSTED_CHARSETS)


def decode(raw, tag, vr, terms):
    """The value of one raw element as pydicom reads it from a file with
    that SpecificCharacterSet; multiple values are joined by "\\" as in
    Orthanc's JSON."""
    dataset = Dataset()
    if terms:
        dataset.SpecificCharacterSet = terms if len(terms) > 1 else terms[0]
    element = Tag(tag.replace("-", ""))
    dataset[element] = RawDataElement(element, vr, len(raw), raw, 0, False, True)
    with warnings.catch_warnings():
        # An unknown term or a bad byte: pydicom falls back, as when it reads a file.
        warnings.simplefilter("ignore")
        value = dataset[element].value
    values = value if isinstance(value, (MultiValue, list)) else [value]
    return "\\".join(str(v) for v in values if v is not None)


class _Entry:
    """A study's cached reading: the charset terms of its first instance, the
    record values read, and which series were checked."""

    def __init__(self, terms, values):
        self.terms = terms
        self.values = values
        self.series = {}
        self.checked = set()


class TextReader:
    """Reads the raw tags of a study's instances through `read(path)` (the
    bytes of an Orthanc REST GET, None on 404) and caches the answers per
    Orthanc study id (at most `capacity` studies). Used by the worker thread
    and by the Explorer's REST route: thread-safe."""

    def __init__(self, read, log, capacity=CACHE_SIZE):
        self._read = read
        self._log = log  # log(level, line)
        self._capacity = capacity
        self._cache = OrderedDict()
        self._lock = threading.Lock()

    def study_text(self, study, instances=None):
        """The StudyText of Orthanc's `study` (/studies/{id}); `instances`:
        /studies/{id}/instances when the caller has it (else read here on
        the study's first look only). Never raises: on an error Orthanc's
        own values stand, and the next push tries again."""
        study_id = study.get("ID")
        try:
            with self._lock:
                entry = self._cache.get(study_id)
                if entry is not None:
                    self._cache.move_to_end(study_id)
            if entry is None:
                if instances is None:
                    instances = self._json(f"/studies/{study_id}/instances")
                if not instances:
                    return NOTHING
                entry = self._read_study(study, instances[0])
                self._remember(study_id, entry)
            if not trusted(entry.terms) and instances:
                self._read_series(entry, instances)
            return StudyText(dict(entry.values), dict(entry.series))
        except Exception as error:  # the study must reach GNU Health anyway
            self._log("warning", f"GNU Health: cannot read the character set of study "
                                 f"{study_id} ({error!r}); its text is sent as Orthanc "
                                 f"decoded it")
            return NOTHING

    def _remember(self, study_id, entry):
        with self._lock:
            self._cache[study_id] = entry
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)

    def _read_study(self, study, instance):
        instance_id = instance["ID"]
        terms = charset_terms(self._tag(instance_id, CHARSET_TAG))
        values = {}
        if _orthanc_value(study, "MainDicomTags", "AccessionNumber"):
            values["accession_issuer"] = self._issuer(instance_id, terms)
        entry = _Entry(terms, values)
        if not trusted(terms):
            for key, (tag, vr, level, name) in STUDY_TAGS.items():
                if _orthanc_value(study, level, name):
                    values[key] = self._decoded(instance_id, tag, vr, terms)
            entry.series[instance["ParentSeries"]] = self._decoded(
                instance_id, *SERIES_DESCRIPTION, terms)
            entry.checked.add(instance["ParentSeries"])
        return entry

    def _read_series(self, entry, instances):
        """The SeriesDescription of every series not checked yet, from its
        first instance, when that instance's charset is not trusted."""
        for instance in instances:
            series_id = instance.get("ParentSeries")
            if series_id in entry.checked:
                continue
            terms = charset_terms(self._tag(instance["ID"], CHARSET_TAG))
            if not trusted(terms):
                entry.series[series_id] = self._decoded(
                    instance["ID"], *SERIES_DESCRIPTION, terms)
            entry.checked.add(series_id)

    def _issuer(self, instance_id, terms):
        present = self._json(f"/instances/{instance_id}/content/{ISSUER_ITEM}") or []
        for tag in ISSUER_TAGS:
            if tag in present:
                value = self._decoded(instance_id, f"{ISSUER_ITEM}/{tag}", "UT", terms)
                if value and value.strip():
                    return value.strip()
        return None

    def _decoded(self, instance_id, path, vr, terms):
        raw = self._tag(instance_id, path)
        return None if raw is None else decode(raw, path.rsplit("/", 1)[-1], vr, terms)

    def _tag(self, instance_id, path):
        return self._read(f"/instances/{instance_id}/content/{path}")

    def _json(self, path):
        raw = self._read(path)
        return None if raw is None else json.loads(raw)


def _orthanc_value(resource, level, name):
    tags = resource.get(level) if isinstance(resource, dict) else None
    value = tags.get(name) if isinstance(tags, dict) else None
    return isinstance(value, str) and value.strip()

"""DICOM files for the demo, the tests and the benchmarks.

Real files come from pydicom's own test data (written by other people, with
their quirks); larger studies are generated from one of them with fresh UIDs,
so that every generated study is a valid CT study Orthanc will accept.
"""
import copy
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

REAL_SAMPLES = ('CT_small.dcm', 'MR_small.dcm')


def real_sample(name):
    "Path of one of pydicom's shipped test files."
    return Path(get_testdata_file(name))


def real_samples():
    return [real_sample(n) for n in REAL_SAMPLES]


def generate_study(directory, series=3, instances=20, study_uid=None,
                   template='CT_small.dcm', seed=None, **study_tags):
    """Write a study of `series` x `instances` files into `directory`.

    `study_tags` set or override top-level tags on every file, by keyword
    (PatientID='P1', AccessionNumber='A1', SpecificCharacterSet='ISO_IR 192',
    ...); a value of None deletes the tag. With a `seed`, the UIDs are the
    same at every call (the demo sends the same study again, not a new
    one). Returns the file paths.
    """
    def uid(*parts):
        return generate_uid(entropy_srcs=[seed, *map(str, parts)] if seed else None)

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(real_sample(template))
    study_uid = study_uid or uid('study')
    paths = []
    for s in range(1, series + 1):
        series_uid = uid('series', s)
        for i in range(1, instances + 1):
            ds = copy.deepcopy(base)
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = uid('instance', s, i)
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.SeriesNumber = s
            ds.InstanceNumber = i
            ds.SeriesDescription = f'Series {s}'
            for keyword, value in study_tags.items():
                if value is None:
                    if keyword in ds:
                        delattr(ds, keyword)
                else:
                    setattr(ds, keyword, value)
            path = directory / f'{series_uid}_{i:05d}.dcm'
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths

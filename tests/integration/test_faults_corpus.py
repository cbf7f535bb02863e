"""A corpus of 210 malformed or edge-case DICOM files: Orthanc stays up,
takes every one of them, and every study reaches GNU Health complete, with
the values docs/operations.md promises ("What the plugin cleans up before
sending (never a reason for failure)"), and none lands in `failed`.

Each file is one study: one of 6 character sets times one of 35 variants.
The expected value of every field a variant touches is written by hand next
to the variant; the others are read with pydicom from the template file the
corpus is made from. Nothing is computed by the plugin's own code.
"""
import datetime
import itertools
import subprocess

import pydicom
from proteus import Model

import samples
import stack
from stack import wait_until

CHARSETS = {
    'ISO_IR 100': 'Gérard^Hélène', 'ISO_IR 101': 'Łukasz^Żółć',
    'ISO_IR 144': 'Иванов^Пётр', 'ISO_IR 192': 'Müller^山田',
    'GB18030': '王^小明', '\\ISO 2022 IR 87': 'Yamada^Tarou=山田^太郎',
}
CHARSET_VALUES = {'\\ISO 2022 IR 87': ['', 'ISO 2022 IR 87']}
# Orthanc keeps no main DICOM tag longer than 256 characters (its
# ORTHANC_MAXIMUM_TAG_LENGTH): /studies/{id} has no value for it, so GNU
# Health gets the field empty, and the plugin's own cut at 1,000 characters
# never comes into play for these tags.
ORTHANC_MAX_TAG = 256
# (tags written into the file, the record's fields that differ from the
# defaults below). None deletes a tag / is an empty field in GNU Health.
VARIANTS = [
    ({}, {}),
    ({'PatientID': None}, {'dicom_patient_id': None}),
    ({'PatientID': ''}, {'dicom_patient_id': None}),
    ({'PatientName': None}, {'dicom_patient_name': None}),
    ({'PatientName': ''}, {'dicom_patient_name': None}),
    ({'StudyDescription': None}, {'description': None}),
    ({'StudyDescription': ''}, {'description': None}),
    ({'StudyDescription': 'x' * 3000}, {'description': None}),  # > ORTHANC_MAX_TAG
    ({'StudyDescription': 'y' * ORTHANC_MAX_TAG}, {'description': 'y' * ORTHANC_MAX_TAG}),
    ({'PatientName': 'N' * 500 + '^' + 'M' * 500}, {'dicom_patient_name': None}),  # idem
    # Control characters are dropped, a tab becomes a space.
    ({'StudyDescription': 'tab\tand\x01control\x1bchars'},
     {'description': 'tab andcontrolchars'}),
    ({'StudyDate': '20241345'}, {'study_date': None}),
    ({'StudyDate': '2024'}, {'study_date': None}),
    ({'StudyTime': '2461'}, {'study_time': None}),
    ({'StudyTime': '246100'}, {'study_time': None}),
    ({'StudyDate': '00000000', 'StudyTime': 'abc'}, {'study_date': None, 'study_time': None}),
    ({'AccessionNumber': 'SHARED-ACC'}, {'accession': 'SHARED-ACC'}),
    ({'AccessionNumber': 'A' * 40}, {'accession': 'A' * 40}),
    ({'NumberOfFrames': 3}, {}),
    ({'private': True}, {}),
    ({'StudyID': '  padded  '}, {}),
    ({'ReferringPhysicianName': 'Dr^' + 'Z' * 300}, {'referring_physician': None}),  # idem
    ({'InstitutionName': ' '}, {'institution': None}),
    ({'PatientBirthDate': '19991399'}, {}),
    ({'uid_padding': True}, {}),  # StudyInstanceUID + ' ': the record has it without
    ({'Modality': ''}, {'modalities': None}),
    ({'StudyDescription': '  spaces around  '}, {'description': 'spaces around'}),
    ({'PatientID': '   '}, {'dicom_patient_id': None}),
    ({'PatientName': '^^^'}, {'dicom_patient_name': '^^^'}),
    ({'StudyTime': '120000.123456'}, {'study_time': datetime.time(12, 0, 0)}),
    ({'StudyTime': '24'}, {'study_time': None}),
    ({'StudyDate': '19000101'}, {'study_date': datetime.date(1900, 1, 1)}),
    ({'PatientSex': 'X' * 20}, {}),
    ({'AccessionNumber': ''}, {'accession': None}),
    ({'ReferringPhysicianName': None}, {'referring_physician': None}),
]
# Files Orthanc 1.10.1 itself refuses at C-STORE, by (charset, variant
# index), with the reason. None: it stores all 210 (storescu exits with 0,
# Orthanc lists every StudyInstanceUID). A file added to the corpus that
# Orthanc refuses must be listed here, with why.
REFUSED_BY_ORTHANC = {}


def template_defaults():
    "The record's fields for a file whose variant changes nothing, from the template."
    ds = pydicom.dcmread(samples.real_sample('CT_small.dcm'))
    return {
        'accession': ds.AccessionNumber or None,
        'study_date': datetime.datetime.strptime(ds.StudyDate, '%Y%m%d').date(),
        'study_time': datetime.datetime.strptime(ds.StudyTime, '%H%M%S').time(),
        'referring_physician': str(ds.ReferringPhysicianName) or None,
        'institution': ds.InstitutionName,
        'modalities': ds.Modality,
    }


def write_corpus(directory):
    """[(path, (charset, variant index), expected record fields)], one study
    per file."""
    defaults = template_defaults()
    corpus = []
    for n, (charset, (variant, changes)) in enumerate(itertools.product(CHARSETS, VARIANTS)):
        name = CHARSETS[charset]
        tags = {k: v for k, v in variant.items() if k not in ('private', 'uid_padding')}
        tags.setdefault('PatientName', name)
        tags.setdefault('PatientID', f'CORPUS-{n:04d}')
        tags.setdefault('StudyDescription', f'{name} #{n}')
        tags['SpecificCharacterSet'] = CHARSET_VALUES.get(charset, charset)
        path, = samples.generate_study(directory / str(n), series=1, instances=1, **tags)
        ds = pydicom.dcmread(path)
        expected = {**defaults, 'study_uid': ds.StudyInstanceUID,
                    'dicom_patient_id': f'CORPUS-{n:04d}', 'dicom_patient_name': name,
                    'description': f'{name} #{n}', **changes}
        if variant.get('private'):
            block = ds.private_block(0x0011, 'ORTHANC-GNUHEALTH TEST', create=True)
            block.add_new(0x01, 'LO', 'private value')
            block.add_new(0x02, 'OB', b'\x00\x01' * 100)
        if variant.get('uid_padding'):
            ds.StudyInstanceUID = ds.StudyInstanceUID + ' '
        ds.save_as(path, enforce_file_format=True)
        corpus.append((path, (charset, n % len(VARIANTS)), expected))
    return corpus


def record_fields(study):
    return {'study_uid': study.study_uid, 'dicom_patient_id': study.dicom_patient_id,
            'dicom_patient_name': study.dicom_patient_name, 'description': study.description,
            'accession': study.accession, 'study_date': study.study_date,
            'study_time': study.study_time, 'referring_physician': study.referring_physician,
            'institution': study.institution, 'modalities': study.modalities or None}


def test_corpus_of_malformed_files(orthanc, gnuhealth, tmp_path):
    corpus = write_corpus(tmp_path / 'corpus')
    assert len(corpus) == len(CHARSETS) * len(VARIANTS) == 210
    sent = subprocess.run(
        ['/usr/bin/storescu', '-aec', stack.ORTHANC_AET, '127.0.0.1', str(orthanc.dicom_port),
         *(str(path) for path, _, _ in corpus)],
        env={'TCP_NODELAY': '1', 'PATH': '/usr/bin:/bin'}, capture_output=True, text=True)
    assert sent.returncode == 0, sent.stderr[-2000:]
    assert orthanc.get('/system')  # still up

    arrive = {e['study_uid']: e for _, key, e in corpus if key not in REFUSED_BY_ORTHANC}
    variant_of = {e['study_uid']: key for _, key, e in corpus}
    in_orthanc = {orthanc.get(f'/studies/{i}')['MainDicomTags']['StudyInstanceUID'].strip()
                  for i in orthanc.get('/studies')}
    assert in_orthanc == set(arrive)

    Study = Model.get('gnuhealth.radiology.study')

    def all_complete():
        status = orthanc.get('/gnuhealth/status')
        assert status['failed'] == [], status['failed']
        studies = Study.find([('reception', '=', 'complete')])
        return status['pending'] == 0 and len(studies) == len(arrive) and studies
    studies = wait_until(all_complete, 120, f'{len(arrive)} studies complete in GNU Health')

    assert sorted(s.study_uid for s in Study.find([])) == sorted(arrive)
    wrong = {}
    for study in studies:
        fields = record_fields(study)
        expected = arrive[study.study_uid]
        wrong.update({(variant_of[study.study_uid], k): (fields[k], expected[k])
                      for k in expected if fields[k] != expected[k]})
        assert (study.instance_count, len(study.series), study.pacs_state) == (1, 1, 'available')
    assert wrong == {}  # {((charset, variant index), field): (in GNU Health, expected)}
    assert orthanc.get('/gnuhealth/status')['failed'] == []

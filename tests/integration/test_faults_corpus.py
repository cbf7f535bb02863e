"""A corpus of 200+ malformed or edge-case DICOM files: Orthanc stays up and
every study is either in GNU Health with the right values or listed in
failed, named, with its reason."""
import itertools
import subprocess

import pydicom
from proteus import Model

import samples
import stack
from stack import wait_until
from orthanc_gnuhealth_plugin import mapping

CHARSETS = {
    'ISO_IR 100': 'Gérard^Hélène', 'ISO_IR 101': 'Łukasz^Żółć',
    'ISO_IR 144': 'Иванов^Пётр', 'ISO_IR 192': 'Müller^山田',
    'GB18030': '王^小明', '\\ISO 2022 IR 87': 'Yamada^Tarou=山田^太郎',
}
CHARSET_VALUES = {'\\ISO 2022 IR 87': ['', 'ISO 2022 IR 87']}
VARIANTS = [
    {}, {'PatientID': None}, {'PatientID': ''}, {'PatientName': None}, {'PatientName': ''},
    {'StudyDescription': None}, {'StudyDescription': ''},
    {'StudyDescription': 'x' * 3000}, {'PatientName': 'N' * 500 + '^' + 'M' * 500},
    {'StudyDescription': 'tab\tand\x01control\x1bchars'},
    {'StudyDate': '20241345'}, {'StudyDate': '2024'}, {'StudyTime': '2461'},
    {'StudyTime': '246100'}, {'StudyDate': '00000000', 'StudyTime': 'abc'},
    {'AccessionNumber': 'SHARED-ACC'}, {'AccessionNumber': 'A' * 40},
    {'NumberOfFrames': 3}, {'private': True}, {'StudyID': '  padded  '},
    {'ReferringPhysicianName': 'Dr^' + 'Z' * 300}, {'InstitutionName': ' '},
    {'PatientBirthDate': '19991399'}, {'uid_padding': True}, {'Modality': ''},
    {'StudyDescription': '  spaces around  '}, {'PatientID': '   '}, {'PatientName': '^^^'},
    {'StudyTime': '120000.123456'}, {'StudyTime': '24'}, {'StudyDate': '19000101'},
    {'PatientSex': 'X' * 20}, {'AccessionNumber': ''}, {'ReferringPhysicianName': None},
]


def write_corpus(directory):
    files = []
    for n, (charset, variant) in enumerate(itertools.product(CHARSETS, VARIANTS)):
        tags = {k: v for k, v in variant.items() if k not in ('private', 'uid_padding')}
        tags.setdefault('PatientName', CHARSETS[charset])
        tags.setdefault('PatientID', f'CORPUS-{n:04d}')
        tags.setdefault('StudyDescription', f'{CHARSETS[charset]} #{n}')
        tags['SpecificCharacterSet'] = CHARSET_VALUES.get(charset, charset)
        path, = samples.generate_study(directory / str(n), series=1, instances=1, **tags)
        if variant.get('private') or variant.get('uid_padding'):
            ds = pydicom.dcmread(path)
            if variant.get('private'):
                block = ds.private_block(0x0011, 'ORTHANC-GNUHEALTH TEST', create=True)
                block.add_new(0x01, 'LO', 'private value')
                block.add_new(0x02, 'OB', b'\x00\x01' * 100)
            if variant.get('uid_padding'):
                ds.StudyInstanceUID = ds.StudyInstanceUID + ' '
            ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def test_corpus_of_malformed_files(orthanc, gnuhealth, tmp_path):
    files = write_corpus(tmp_path / 'corpus')
    assert len(files) >= 200
    for start in range(0, len(files), 50):  # storescu gives up on a refused file
        subprocess.run(['/usr/bin/storescu', '-aec', stack.ORTHANC_AET, '127.0.0.1',
                        str(orthanc.dicom_port), *map(str, files[start:start + 50])],
                       env={'TCP_NODELAY': '1', 'PATH': '/usr/bin:/bin'},
                       capture_output=True)
    assert orthanc.get('/system')  # still up
    ids = orthanc.get('/studies')
    assert len(ids) >= 190, len(ids)
    Study = Model.get('gnuhealth.radiology.study')

    def settled():
        status = orthanc.get('/gnuhealth/status')
        failed = {f['orthanc_id'] for f in status['failed']}
        synced = {s.orthanc_id for s in Study.find([])}
        return status['pending'] == 0 and set(ids) <= synced | failed and (synced, failed)
    synced, failed = wait_until(settled, 120, 'every study synced or failed')
    for entry in orthanc.get('/gnuhealth/status')['failed']:
        assert entry['study_uid'] and entry['reason'], entry
    by_id = {s.orthanc_id: s for s in Study.find([])}
    for study_id in set(ids) - failed:
        orthanc_study = orthanc.get(f'/studies/{study_id}')
        tags, patient = orthanc_study['MainDicomTags'], orthanc_study['PatientMainDicomTags']
        record = by_id[study_id]
        assert record.study_uid == tags['StudyInstanceUID'].strip()
        assert record.description == mapping.text(tags.get('StudyDescription'))
        assert record.dicom_patient_name == mapping.text(patient.get('PatientName'))
        assert record.study_date == (None if not mapping.dicom_date(tags.get('StudyDate'))
                                     else __import__('datetime').date.fromisoformat(
                                         mapping.dicom_date(tags.get('StudyDate'))))
    print(f'{len(ids)} studies in Orthanc, {len(synced)} synced, {len(failed)} failed')
    # The non-ASCII names arrive intact.
    names = {s.dicom_patient_name for s in by_id.values()}
    for name in CHARSETS.values():
        assert name in names, name

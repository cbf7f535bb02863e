"""The benchmarks' archive: N studies x S series x I instances.

Realistic tags (a CT from pydicom's test data, with patient name, birth
date, sex, accession, description, modality, institution and referring
physician set per study). Every MATCH_EVERY-th study carries the PUID of a
GNU Health patient created by `create_patients()` (so the linking rules
run as in a hospital); the others carry PatientIDs GNU Health does not know.

    .venv/bin/python benchmarks/dataset.py DIR --studies 200 --series 3 --instances 10
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'scripts'))
import samples  # noqa: E402

MATCH_EVERY = 4
# PUIDs of the GNU Health patients `create_patients()` makes (PUIDs given at
# creation are kept by GNU Health), so one archive serves every trytond.
KNOWN_PUIDS = [f'BENCHPAT{n:03d}' for n in range(10)]
DESCRIPTIONS = ['CT chest', 'CT abdomen with contrast', 'CT head', 'CT pelvis']


def study_tags(number):
    "The top-level tags of study `number`; a known PUID every MATCH_EVERY."
    patient = {
        'PatientID': f'BENCH-{number:06d}', 'PatientName': f'Bench^Patient{number}',
        'PatientBirthDate': f'19{50 + number % 50:02d}0{1 + number % 9}15',
        'PatientSex': 'MF'[number % 2]}
    if number % MATCH_EVERY == 0:
        # The patient's own demographics: a mismatch would be a conflict.
        known = (number // MATCH_EVERY) % len(KNOWN_PUIDS)
        patient = {'PatientID': KNOWN_PUIDS[known], 'PatientName': f'Patient^Bench{known}',
                   'PatientBirthDate': None, 'PatientSex': 'F'}
    return {
        **patient,
        'AccessionNumber': f'ACC{number:07d}',
        'StudyDescription': DESCRIPTIONS[number % len(DESCRIPTIONS)],
        'InstitutionName': 'Bench General Hospital',
        'ReferringPhysicianName': 'Referrer^Rita',
        'StudyDate': f'2026{1 + number % 12:02d}{1 + number % 28:02d}',
    }


def generate(directory, studies, series, instances, prefix='s', start=0):
    """Write the archive under `directory`; returns one list of file paths per
    study, in order. UIDs are seeded by `prefix` and the study number: the
    same call writes the same studies."""
    directory = Path(directory)
    return [samples.generate_study(directory / f'{prefix}{n:06d}', series=series,
                                   instances=instances, seed=f'bench {prefix} {n}',
                                   **study_tags(n))
            for n in range(start, start + studies)]


def create_patients(config):
    """Create the patients of KNOWN_PUIDS in GNU Health (the proteus session
    `config` of an administrator)."""
    for n, puid in enumerate(KNOWN_PUIDS):
        create_patient(config, puid, f'Bench{n}', 'Patient', 'f')


def create_patient(config, puid, name, lastname, gender, dob=None):
    """One party and its GNU Health patient, one RPC each: GNU Health gives
    every party of one create call the same code."""
    from proteus import Model
    Party, Patient = Model.get('party.party'), Model.get('gnuhealth.patient')
    party, = Party._proxy.create([{
        'name': name, 'lastname': lastname, 'ref': puid, 'is_person': True,
        'is_patient': True, 'gender': gender, 'dob': dob, 'fed_country': None,
        'federation_account': f'XXX{puid}'}], config.context)
    Patient._proxy.create([{'party': party}], config.context)


def add_archive_arguments(parser, studies=200, series=3, instances=10):
    "--studies × --series × --instances: the archive a benchmark generates"
    parser.add_argument('--studies', type=int, default=studies)
    parser.add_argument('--series', type=int, default=series, help='per study')
    parser.add_argument('--instances', type=int, default=instances, help='per series')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('directory')
    add_archive_arguments(parser)
    args = parser.parse_args()
    paths = generate(args.directory, args.studies, args.series, args.instances)
    print(f'{sum(map(len, paths))} files in {args.directory}')


if __name__ == '__main__':
    main()

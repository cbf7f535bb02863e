"""Accounts and demo records in the demo/test GNU Health database.

`accounts` runs inside the venv with proteus talking straight to trytond's
code (`set_trytond`), while no trytond server is running on that database:
its users are in the cached template. `records()` runs over XML-RPC against
the started demo server (stack.py), so the tests' databases stay empty.
`sync-account` is the production one: the sync account alone (README,
"Production"; the GNU Health image runs it at each start).
"""
import argparse

from proteus import Model, config as proteus_config


def group(xml_id):
    module, name = xml_id.split('.')
    ModelData = Model.get('ir.model.data')
    record, = ModelData.find([('module', '=', module), ('fs_id', '=', name)])
    return Model.get('res.group')(record.db_id)


def user(login, name, password, groups):
    "Create or update a user with exactly these groups."
    User = Model.get('res.user')
    found = User.find([('login', '=', login)])
    account = found[0] if found else User(login=login)
    account.name = name
    account.password = password
    account.groups.clear()
    account.groups.extend(group(g) for g in groups)
    account.save()
    return account


# The demo's people, in the groups that fit their role (README, "Demo").
# GNU Health's clinicians are group_health_doctor; radiologists also link
# studies by hand (group_radiology_staff).
DEMO_USERS = {
    'clinician': ('Dr. Clara Clinician', 'clinician-demo', [
        'health.group_health_doctor',
        'health_imaging.group_health_imaging']),
    'radiologist': ('Dr. Rafael Radiologist', 'radiologist-demo', [
        'health.group_health_doctor',
        'health_imaging.group_health_imaging',
        'health_radiology.group_radiology_staff']),
    }


def sync_account(password, login='orthanc-sync'):
    """The plugin's technical account (GnuHealth.TrytonUser), in the
    Radiology Sync group alone: only what the sync needs. Run again, it
    sets the password anew (a rotated secret)."""
    user(login, 'Orthanc synchronisation', password,
         ['health_radiology.group_radiology_sync'])


def accounts(sync_password):
    sync_account(sync_password)
    # The administrator also runs radiology, so the demo shows every menu.
    admin, = Model.get('res.user').find([('login', '=', 'admin')])
    admin.groups.extend([group('health_radiology.group_radiology_admin')])
    admin.save()
    admin_health_professional(admin)
    for login, (name, password, groups) in DEMO_USERS.items():
        admin_health_professional(user(login, name, password, groups), name)


def admin_health_professional(admin, name='Administrator'):
    """Make the administrator a health professional.

    GNU Health refuses imaging requests and other clinical records from a
    user whose party is not a health professional (SM-CORE-0007).
    """
    Party = Model.get('party.party')
    Professional = Model.get('gnuhealth.healthprofessional')
    if Professional.find([('party.internal_user', '=', admin.id)]):
        return
    party = Party(name=name, is_person=True, is_healthprof=True,
                  gender='nd', internal_user=admin)
    party.save()
    Professional(party=party).save()


# Patients with imaging orders; each `study` becomes a generated study sent
# by C-STORE with the patient's PUID (and the order's code as accession).
DEMO_PATIENTS = [
    {'name': 'Ana', 'lastname': 'García', 'gender': 'f',
     'order': 'CT chest', 'study': 'CT chest, 2 series', 'accession': True},
    {'name': 'Bruno', 'lastname': 'Costa', 'gender': 'm',
     'order': 'CT chest', 'study': 'CT head, 2 series', 'accession': False},
    {'name': 'Chloé', 'lastname': 'Martin', 'gender': 'f',
     'order': 'CT chest', 'study': None, 'accession': False},
    ]


def imaging_test(code, name, test_type):
    """The orderable imaging test `code` (GNU Health ships none), made on
    first use with its product."""
    Uom = Model.get('product.uom')
    Template = Model.get('product.template')
    TestType = Model.get('gnuhealth.imaging.test.type')
    ImagingTest = Model.get('gnuhealth.imaging.test')
    tests = ImagingTest.find([('code', '=', code)])
    if tests:
        return tests[0]
    template = Template(name=name, type='service',
                        default_uom=Uom.find([('symbol', '=', 'u')])[0])
    template.save()
    test = ImagingTest(code=code, name=name, product=template.products[0],
                       test_type=TestType.find([('code', '=', test_type)])[0])
    test.save()
    return test


def patient(name, lastname, **values):
    "The patient of that name, made on first use with `values` (gender...)."
    Party = Model.get('party.party')
    Patient = Model.get('gnuhealth.patient')
    patients = Patient.find([('party.name', '=', name),
                             ('party.lastname', '=', lastname)])
    if patients:
        return patients[0]
    party = Party(name=name, lastname=lastname, is_person=True,
                  is_patient=True, **values)
    party.save()
    return Patient.find([('party', '=', party.id)])[0]


def order(patient, test, date=None, confirm=True):
    """An imaging order as a clinician makes it: saved, then confirmed
    ("requested"), which puts it on the modality worklist."""
    Request = Model.get('gnuhealth.imaging.test.request')
    request = Request(patient=patient, requested_test=test)
    if date:
        request.date = date
    request.save()
    if confirm:
        request.click('requested')
    return request


def records():
    """Create the demo patients and their imaging orders (proteus must be
    configured); return what the sample studies need for each patient."""
    Request = Model.get('gnuhealth.imaging.test.request')
    # Idempotent: `make demo` run again on the same database finds them.
    test = imaging_test('CT-CHEST', 'CT chest', 'CT')
    made = []
    for values in DEMO_PATIENTS:
        person = patient(values['name'], values['lastname'], gender=values['gender'])
        requests = Request.find([('patient', '=', person.id),
                                 ('requested_test', '=', test.id)])
        request = requests[0] if requests else order(person, test)
        made.append({**values, 'patient_id': person.id, 'puid': person.puid,
                     'request': request.request})
    return made


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', required=True)
    parser.add_argument('--database', required=True)
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('accounts').add_argument('--sync-password', required=True)
    # Production (README, "Production"): the sync account only, its password
    # read from a file so that it is in no command line.
    sync = sub.add_parser('sync-account')
    sync.add_argument('--password-file', required=True, type=argparse.FileType())
    sync.add_argument('--login', default='orthanc-sync')
    args = parser.parse_args()
    proteus_config.set_trytond(args.database, config_file=args.config)
    if args.command == 'accounts':
        accounts(args.sync_password)
    else:
        sync_account(args.password_file.read().strip(), args.login)


if __name__ == '__main__':
    main()

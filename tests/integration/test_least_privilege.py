"""Least privilege, by real RPC against GNU Health 5.0 with the demo and
test accounts of scripts/demo_data.py: the sync account syncs and serves
the worklist, and is refused prescriptions, lab results and their requests
(health_lab), party addresses and contact mechanisms, and deleting a
patient; a clinician or a radiologist cannot change what the PACS holds of
a study; only administrators manage servers.
"""
import contextlib
import datetime
import xmlrpc.client

import pytest
from proteus import Model
from proteus import config as proteus_config

import demo_data
import samples
import stack
from stack import wait_until


@contextlib.contextmanager
def rpc(trytond, account):
    "call(model, method, *args) as `account` (login, password), over XML-RPC."
    with proteus_config.set_xmlrpc_session(trytond.database_url, username=account[0],
                                           password=account[1]) as config:
        yield lambda model, method, *args: getattr(
            config.server, f'model.{model}.{method}')(*args, config.context)


def refused(call, *args):
    """True when trytond refuses the call with its access error (a user
    error: fault 1, "You are not allowed to ...")."""
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call(*args)
    fault = caught.value
    assert fault.faultCode == 1 and 'not allowed' in str(fault.faultString), fault
    return True


@pytest.mark.gnuhealth(PollInterval=1, Worklist={'RefreshInterval': 1, 'MaxStaleness': 30})
def test_sync_account_does_its_job_and_nothing_else(orthanc, trytond, gnuhealth, tmp_path):
    # A birth date: health_lab's lab test request computes the patient's age.
    patient = demo_data.patient('Least', 'Privilege', gender='f',
                                dob=datetime.date(1980, 5, 17))
    files = samples.generate_study(tmp_path / 'dicom', series=1, instances=1,
                                   PatientID=patient.puid)
    orthanc.store(files)
    Study = Model.get('gnuhealth.radiology.study')
    wait_until(lambda: Study.find([('reception', '=', 'complete')]), 60, 'the study synced')
    # The worklist loads the open orders as the sync account.
    wait_until(lambda: orthanc.get('/gnuhealth/status')['worklist']['age_seconds']
               is not None, 30, 'the worklist loaded')
    assert orthanc.get('/gnuhealth/status')['worklist']['last_error'] is None
    [study_id] = orthanc.get('/studies')
    assert orthanc.get(f'/gnuhealth/studies/{study_id}/state')['state'] == 'synced'

    party = patient.party.id
    Address = Model.get('party.address')
    address, = Address.find([('party', '=', party)]) or [Address(party=patient.party)]
    address.street = 'Distinct Street 7'
    address.save()
    phone = Model.get('party.contact_mechanism')(party=patient.party, type='phone',
                                                 value='+1 555 0199')
    phone.save()
    # A lab test request, of one of the test types health_lab ships.
    lab_request = Model.get('gnuhealth.patient.lab.test')(
        test_type=Model.get('gnuhealth.lab.test_type').find([])[0], patient_id=patient)
    lab_request.save()
    with rpc(trytond, stack.SYNC) as call:
        assert refused(call, 'gnuhealth.prescription.order', 'search_read', [], 0, 10, None,
                       ['id'])
        # Addresses and phones: a record rule hides every one of them.
        for model, record in (('party.address', address), ('party.contact_mechanism', phone)):
            assert call(model, 'search_read', [], 0, 10, None, ['id']) == []
            assert refused(call, model, 'read', [record.id], ['id'])
            assert refused(call, model, 'write', [record.id], {'active': False})
        assert refused(call, 'party.address', 'write', [address.id], {'street': 'x'})
        assert refused(call, 'party.address', 'create', [{'party': party}])
        assert refused(call, 'party.contact_mechanism', 'create',
                       [{'party': party, 'type': 'phone', 'value': '+1 555 0100'}])
        assert refused(call, 'gnuhealth.prescription.order', 'create',
                       [{'patient': patient.id}])
        assert refused(call, 'gnuhealth.patient', 'delete', [patient.id])
        # Lab results and lab test requests: health_lab's default access row
        # denies them to any group it does not name.
        for model in ('gnuhealth.lab', 'gnuhealth.patient.lab.test'):
            assert refused(call, model, 'search_read', [], 0, 10, None, ['id'])
            assert refused(call, model, 'create', [{'patient': patient.id}])
        assert refused(call, 'gnuhealth.patient.lab.test', 'read', [lab_request.id], ['id'])
        assert refused(call, 'gnuhealth.patient.lab.test', 'write', [lab_request.id],
                       {'comment': 'x'})
        # What its job needs it still may: read patients for the worklist.
        assert call('gnuhealth.patient', 'read', [patient.id], ['id'])
    # The grants are the sync group's own: the clinician still reads
    # addresses and lab test requests.
    with rpc(trytond, stack.CLINICIAN) as call:
        assert call('party.address', 'read', [address.id], ['street'])[0]['street'] \
            == 'Distinct Street 7'
        assert call('gnuhealth.patient.lab.test', 'read', [lab_request.id], ['patient_id']) \
            == [{'id': lab_request.id, 'patient_id': patient.id}]


def test_people_cannot_change_pacs_fields_and_only_admins_manage_servers(
        orthanc, trytond, gnuhealth, tmp_path):
    orthanc.store(samples.generate_study(tmp_path / 'dicom', series=1, instances=1))
    Study = Model.get('gnuhealth.radiology.study')
    study, = wait_until(lambda: Study.find([]), 60, 'the study synced')
    server = study.server.id
    for account in (stack.CLINICIAN, stack.RADIOLOGIST):
        with rpc(trytond, account) as call:
            for values in ({'orthanc_id': 'forged'}, {'pacs_state': 'deleted'},
                           {'study_uid': '1.2.3'}):
                assert refused(call, 'gnuhealth.radiology.study', 'write', [study.id],
                               values)
            assert refused(call, 'gnuhealth.radiology.server', 'write', [server],
                           {'public_url': 'http://evil.example'})
            assert refused(call, 'gnuhealth.radiology.server', 'create',
                           [{'label': 'rogue', 'public_url': 'http://rogue.example'}])
    with rpc(trytond, stack.ADMIN) as call:
        call('gnuhealth.radiology.server', 'write', [server],
             {'public_url': 'http://pacs.example'})
        assert call('gnuhealth.radiology.server', 'read', [server],
                    ['public_url'])[0]['public_url'] == 'http://pacs.example'

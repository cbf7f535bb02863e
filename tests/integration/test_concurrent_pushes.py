"""Two Orthanc nodes push the same new studies at the same moment: GNU
Health's upsert keeps each study, series and instance once and neither push
fails. Meaningful on PostgreSQL (make test-postgresql), where the two
transactions really run at once; on SQLite they take turns.

The server's first registration is not raced here: two nodes creating the
same new server label at once make one push fail on the label's unique
constraint (a user error); the plugin then pushes that batch's studies again
one by one, which succeeds (docs/operations.md, "Cluster")."""
import threading
import xmlrpc.client

from proteus import Model
from proteus import config as proteus_config

import stack

ROUNDS = 15


def batch(number):
    "A batch of one new study (two series of two instances), as the plugin sends it."
    uid = f'1.2.826.0.1.3680043.8.498.777.{number}'
    return {
        'server': {'label': 'race', 'public_url': 'http://pacs.example:8042',
                   'viewers': ['explorer'], 'templates': {}, 'accession_issuers': []},
        'studies': [{
            'study_uid': uid, 'orthanc_id': f'race-study-{number}', 'accession': None,
            'dicom_patient_id': f'RACE-{number}', 'dicom_patient_name': 'Race^Test',
            'study_date': None, 'study_time': None, 'description': 'race',
            'modalities': 'CT', 'referring_physician': None, 'institution': None,
            'complete': True, 'last_update': '20261201T100000',
            'series': [{
                'series_uid': f'{uid}.{s}', 'orthanc_id': f'race-series-{number}-{s}',
                'modality': 'CT', 'number': s, 'description': None, 'body_part': None,
                'instances': [{'sop_instance_uid': f'{uid}.{s}.{i}',
                               'orthanc_id': f'race-instance-{number}-{s}-{i}', 'number': i}
                              for i in (1, 2)]} for s in (1, 2)]}],
        'deleted': []}


def node(trytond, barrier, outcomes):
    "One node: a session of the sync account, pushing each round's batch at once."
    with proteus_config.set_xmlrpc_session(trytond.database_url, username=stack.SYNC[0],
                                           password=stack.SYNC[1]) as config:
        push = getattr(config.server, 'model.gnuhealth.radiology.study.push_from_pacs')
        for number in range(ROUNDS):
            barrier.wait(timeout=60)
            try:
                push(batch(number), config.context)
                outcomes.append(None)
            except xmlrpc.client.Fault as fault:
                outcomes.append(fault.faultString)


def test_two_nodes_push_the_same_new_studies_at_once(trytond, gnuhealth):
    Study = Model.get('gnuhealth.radiology.study')
    # The server, registered once (as the sync account would).
    getattr(gnuhealth.server, 'model.gnuhealth.radiology.study.push_from_pacs')(
        {**batch(-1), 'studies': []}, gnuhealth.context)
    barrier, outcomes = threading.Barrier(2), []
    threads = [threading.Thread(target=node, args=(trytond, barrier, outcomes))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert len(outcomes) == 2 * ROUNDS
    assert [o for o in outcomes if o is not None] == []
    studies = Study.find([('server.label', '=', 'race')])
    assert sorted(s.study_uid for s in studies) == sorted(
        batch(n)['studies'][0]['study_uid'] for n in range(ROUNDS))
    assert len(Model.get('gnuhealth.radiology.series').find(
        [('study.server.label', '=', 'race')])) == 2 * ROUNDS
    assert len(Model.get('gnuhealth.radiology.instance').find(
        [('series.study.server.label', '=', 'race')])) == 4 * ROUNDS

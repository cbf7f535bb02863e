"""Two Orthanc nodes share one PostgreSQL index (Debian's orthanc-postgresql,
a private PostgreSQL 15 cluster started here); images go to both; every
study is in GNU Health once."""
from proteus import Model

import samples
from cluster import ClusterNode
from stack import wait_until


def test_two_nodes_one_postgresql_index_no_duplicates(
        tmp_path, postgresql, trytond, gnuhealth, failure_logs):
    nodes = [ClusterNode(tmp_path / name, trytond.url, name='cluster', pg_port=postgresql,
                         storage=tmp_path / 'storage',
                         gnuhealth={'RetryMinDelay': 0.5, 'RetryMaxDelay': 2,
                                    'PollInterval': 1, 'PublicUrl': 'http://pacs:8042'})
             for name in ('node-a', 'node-b')]
    failure_logs(nodes + [trytond])
    try:
        for node in nodes:
            node.start()
        expected = set()
        for n in range(20):
            uid = f'1.2.826.0.1.3680043.8.498.4242.{n}'
            expected.add(uid)
            files = samples.generate_study(tmp_path / 'dicom' / str(n), series=1,
                                           instances=2, study_uid=uid, PatientID=f'CL-{n}')
            nodes[n % 2].store(files)
            if n % 5 == 0:  # some studies reach both nodes
                nodes[(n + 1) % 2].store(files)
        assert len(nodes[0].get('/studies')) == len(nodes[1].get('/studies')) == 20
        Study = Model.get('gnuhealth.radiology.study')

        def all_once():
            found = [s.study_uid for s in Study.find([])]
            return len(found) == 20 and set(found) == expected
        wait_until(all_once, 60, '20 studies once in GNU Health')
        # A study is first pushed while still receiving; its last instances
        # arrive with the push at StableStudy, so wait for completeness.
        wait_until(lambda: all(s.reception == 'complete' for s in Study.find([])),
                   60, 'all 20 studies complete')
        for node in nodes:
            wait_until(lambda: node.get('/gnuhealth/status')['pending'] == 0, 30, 'idle')
        assert len(Model.get('gnuhealth.radiology.instance').find([])) == 40
        assert all(not node.get('/gnuhealth/status')['failed'] for node in nodes)
    finally:
        for node in nodes:
            node.stop()

"""The plugin's metrics in Orthanc's own /tools/metrics-prometheus, before
and after studies arrive: pushes, pending changes, failed studies, the
last push's duration, the worklist's queries and age, the sync lag."""
import base64
import urllib.request

import pytest

import samples
import stack
from modality import ask_worklist, worklist_query
from stack import wait_until

FAST = {'RetryMinDelay': 0.5, 'RetryMaxDelay': 2, 'PollInterval': 1,
        'Worklist': {'RefreshInterval': 1, 'MaxStaleness': 30}}


def prometheus(orthanc):
    """{name: value} of the gnuhealth_ metrics in Orthanc's Prometheus text
    (one "name value timestamp" line each)."""
    request = urllib.request.Request(orthanc.url + '/tools/metrics-prometheus')
    token = base64.b64encode(':'.join(stack.ORTHANC_ADMIN).encode()).decode()
    request.add_header('Authorization', 'Basic ' + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read().decode()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.startswith('gnuhealth_')}


@pytest.mark.gnuhealth(**FAST)
def test_metrics_before_and_after_studies_arrive(orthanc, trytond, tmp_path):
    before = wait_until(lambda: prometheus(orthanc).get('gnuhealth_worklist_age_seconds', -1)
                        >= 0 and prometheus(orthanc), 30, 'the first metrics')
    assert before['gnuhealth_pushes_total'] == 0
    assert before['gnuhealth_pending_changes'] == 0
    assert before['gnuhealth_failed_studies'] == 0
    assert before['gnuhealth_sync_lag_seconds'] == 0
    assert before['gnuhealth_worklist_queries_total'] == 0
    assert before['gnuhealth_worklist_age_seconds'] <= 30  # refreshed every second

    # Two good studies and one GNU Health refuses (a 70-character UID).
    good = [samples.generate_study(tmp_path / str(n), series=1, instances=2,
                                   PatientID=f'MET-{n}') for n in range(2)]
    bad = samples.generate_study(tmp_path / 'bad', series=1, instances=1, PatientID='BAD',
                                 study_uid='1.2.826.0.1.3680043.8.498.' + '1' * 44)
    orthanc.store(good[0] + good[1] + bad)
    for n in range(3):
        ask_worklist(orthanc.dicom_port, worklist_query(), called_aet=stack.ORTHANC_AET)

    def settled():
        values = prometheus(orthanc)
        return (values['gnuhealth_failed_studies'] == 1
                and values['gnuhealth_pending_changes'] == 0
                and orthanc.get('/gnuhealth/status')['receiving'] == 0 and values)
    after = wait_until(settled, 60, 'studies pushed, one failed')
    status = orthanc.get('/gnuhealth/status')
    assert after['gnuhealth_pushes_total'] >= 2  # at least one each: receiving, complete
    assert after['gnuhealth_pushes_total'] <= status['pushes']  # published before read
    assert 0 < after['gnuhealth_last_push_duration_seconds'] < stack.RPC_TIMEOUT
    assert after['gnuhealth_worklist_queries_total'] == 3
    assert after['gnuhealth_sync_lag_seconds'] == 0
    assert after['gnuhealth_reachable'] == 1

    # trytond stops: the changes wait, and the lag grows.
    trytond.stop()
    orthanc.store(samples.generate_study(tmp_path / 'late', series=1, instances=1,
                                         PatientID='MET-LATE'))
    late = wait_until(lambda: (lambda v: v['gnuhealth_sync_lag_seconds'] >= 2 and v)(
        prometheus(orthanc)), 30, 'the lag grows while trytond is down')
    assert late['gnuhealth_pending_changes'] > 0
    assert late['gnuhealth_reachable'] == 0

"""Faults against real servers: trytond down, a study GNU Health rejects,
deletions, a 500-study backfill. Each test starts its own trytond and Orthanc
(scripts/stack.py) with short back-off delays. Orthanc or trytond SIGKILLed,
a hung trytond, and the audit: test_convergence.py."""
import sqlite3
import time

import pytest
from proteus import Model

import samples
import stack
from stack import wait_until

FAST = {'RetryMinDelay': 0.5, 'RetryMaxDelay': 2, 'PollInterval': 1}


@pytest.fixture
def fast_orthanc(tmp_path, trytond, failure_logs):
    server = stack.Orthanc(tmp_path / 'orthanc', trytond.url, gnuhealth=FAST)
    failure_logs([server, trytond])
    yield server.start()
    server.stop()


def studies():
    return Model.get('gnuhealth.radiology.study').find([])


def one_instance_studies(directory, count, **tags):
    "`count` studies of one instance each; returns their files."
    files = []
    for n in range(count):
        paths = samples.generate_study(directory / str(n), series=1, instances=1,
                                       PatientID=f'FAULT-{n:04d}', **tags)
        files += paths
    return files


def exactly_once(expected_uids):
    def check():
        found = [s.study_uid for s in studies()]
        return len(found) == len(expected_uids) and set(found) == set(expected_uids)
    return check


def orthanc_uids(orthanc):
    return {orthanc.get(f'/studies/{i}')['MainDicomTags']['StudyInstanceUID']
            for i in orthanc.get('/studies')}


def test_trytond_down_while_30_studies_arrive(fast_orthanc, trytond, gnuhealth, tmp_path):
    trytond.stop()
    fast_orthanc.store(one_instance_studies(tmp_path / 'dicom', 30))
    wait_until(lambda: fast_orthanc.get('/gnuhealth/status')['gnuhealth_reachable'] is False,
               30, 'the plugin notices trytond is down')
    status = fast_orthanc.get('/gnuhealth/status')
    assert status['pending'] > 0 and status['last_error']
    assert len(fast_orthanc.get('/studies')) == 30  # Orthanc kept accepting
    trytond.start()
    expected = orthanc_uids(fast_orthanc)
    wait_until(exactly_once(expected), 60, '30 studies exactly once in GNU Health')
    wait_until(lambda: fast_orthanc.get('/gnuhealth/status')['pending'] == 0, 30, 'pending 0')
    status = fast_orthanc.get('/gnuhealth/status')
    assert status['gnuhealth_reachable'] is True and status['failed'] == []


def test_rejected_study_is_failed_and_does_not_hold_back_20_others(
        fast_orthanc, gnuhealth, tmp_path):
    # An invalid StudyInstanceUID of 70 characters (DICOM allows 64): the
    # plugin never cuts a UID (two could merge), GNU Health refuses it.
    bad_uid = '1.2.826.0.1.3680043.8.498.' + '1' * 44
    fast_orthanc.store(samples.generate_study(
        tmp_path / 'bad', series=1, instances=1, study_uid=bad_uid, PatientID='BAD'))
    wait_until(lambda: fast_orthanc.get('/gnuhealth/status')['failed'], 30, 'failed entry')
    fast_orthanc.store(one_instance_studies(tmp_path / 'good', 20))
    good = orthanc_uids(fast_orthanc) - {bad_uid}
    wait_until(exactly_once(good), 60, 'the 20 good studies in GNU Health')
    failed, = fast_orthanc.get('/gnuhealth/status')['failed']
    assert failed['study_uid'] == bad_uid
    assert 'study_uid' in failed['reason'] or 'long' in failed['reason'], failed
    answer = fast_orthanc.post(f"/gnuhealth/studies/{failed['orthanc_id']}/sync")
    assert answer['result'] == 'rejected' and answer['reason']
    # Retried with back-off, not forgotten.
    wait_until(lambda: fast_orthanc.get('/gnuhealth/status')['failed'][0]['retries'] >= 2,
               30, 'retried later')


def test_deleting_a_study_and_a_series_shows_in_gnuhealth(fast_orthanc, gnuhealth, tmp_path):
    for name in ('a', 'b'):
        fast_orthanc.store(samples.generate_study(
            tmp_path / name, series=2, instances=2, PatientID=f'DEL-{name}'))
    Study = Model.get('gnuhealth.radiology.study')
    Series = Model.get('gnuhealth.radiology.series')
    # Both series of each: a study still receiving is read again at most
    # once per PollInterval, so its second series may come after its first.
    wait_until(lambda: len(Series.find([])) == 4, 30, 'two studies of two series in GNU Health')
    first, second = sorted(fast_orthanc.get('/studies'))
    doomed_series = fast_orthanc.get(f'/studies/{second}')['Series'][0]
    started = time.monotonic()
    fast_orthanc.delete(f'/studies/{first}')
    fast_orthanc.delete(f'/series/{doomed_series}')

    def gone():
        study, = Study.find([('orthanc_id', '=', first)])
        series, = Series.find([('orthanc_id', '=', doomed_series)])
        return study.pacs_state == 'deleted' and series.pacs_state == 'deleted'
    # Seconds on an idle machine; a loaded 2-core CI runner needs margin.
    wait_until(gone, 60, 'the deletions in GNU Health')
    print(f'deletions visible in GNU Health after {time.monotonic() - started:.1f} s')
    study, = Study.find([('orthanc_id', '=', first)])
    assert study.explorer_url is None and len(study.series) == 2  # the record stays
    other, = Study.find([('orthanc_id', '=', second)])
    assert other.pacs_state == 'available'
    assert sorted(s.pacs_state for s in other.series) == ['available', 'deleted']


def test_backfill_of_500_studies_with_progress(tmp_path, trytond, gnuhealth, failure_logs):
    files = one_instance_studies(tmp_path / 'dicom', 500)
    # An archive that existed before the plugin: its change log already
    # consumed, so only POST /gnuhealth/resync brings it to GNU Health (the
    # audit would too, paced: it is off here).
    no_audit = {**FAST, 'AuditInterval': 0}
    orthanc = stack.Orthanc(tmp_path / 'orthanc', trytond.url,
                            gnuhealth={**no_audit, 'Enabled': False})
    failure_logs([orthanc, trytond])
    orthanc.start()
    try:
        orthanc.store(files)
        # Every StableStudy logged first, or it would come after the cursor.
        wait_until(lambda: all(s['IsStable'] for s in orthanc.get('/studies?expand')), 60,
                   'every study stable')
        last = orthanc.get('/changes?last')['Last']
        orthanc.stop()
        db = sqlite3.connect(orthanc.workdir / 'storage' / 'index')
        try:
            with db:
                db.execute('INSERT OR REPLACE INTO GlobalProperties VALUES (9721, ?)',
                           (str(last),))
        finally:
            db.close()  # an open connection makes Orthanc's writes fail (busy)
        orthanc.gnuhealth = no_audit
        orthanc.start()
        wait_until(lambda: orthanc.get('/gnuhealth/status')['cursor'] == last, 30, 'cursor')
        assert studies() == []
        started = time.monotonic()
        assert orthanc.post('/gnuhealth/resync')['started'] is True
        progress = []

        def finished():
            resync = orthanc.get('/gnuhealth/status')['resync']
            progress.append(resync['done'])
            return not resync['running'] and resync['done'] >= 500
        wait_until(finished, 240, 'the backfill')
        elapsed = time.monotonic() - started
        print(f'backfill of 500 studies: {elapsed:.1f} s; progress seen: '
              f'{sorted(set(progress))[:5]}...')
        assert len([p for p in set(progress) if 0 < p < 500]) >= 3
        assert len(studies()) == 500
        assert len(Model.get('gnuhealth.radiology.instance').find([])) == 500
    finally:
        orthanc.stop()

"""Faults: restarts, resync under deletion, DB outages (deletions nobody saw: test_audit.py)."""
import xmlrpc.client

from orthanc_gnuhealth_plugin.errors import GnuHealthUnavailable, StudyRejected
from orthanc_gnuhealth_plugin.gnuhealth_client import classify
from orthanc_gnuhealth_plugin.sync import SyncWorker

from fakes import FakeClock, FakeGnuHealth, FakeOrthanc, settings
from fakes import Log, run_worker_until
from test_sync import make_worker, run_until_idle, store_studies, sync_with_rejections


def test_noted_deletions_are_persisted_before_they_are_sent_and_survive_a_crash():
    orthanc, gnuhealth, clock, log = FakeOrthanc(), FakeGnuHealth(), FakeClock(), Log()
    [study_id] = store_studies(orthanc, 1)
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    gnuhealth.unreachable = True
    for level, resource_id in orthanc.delete_study(study_id):
        worker.note_deleted(level, resource_id)
    worker.run_once()
    assert len(orthanc.get_state()["deleted"]) == 3
    assert worker.status.to_json()["pending_deletions"] == 3
    # Orthanc is killed; a new worker (new process) reads the state.
    gnuhealth.unreachable = False
    restarted = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(restarted)
    assert [d["level"] for d in gnuhealth.deleted()] == ["study", "series", "instance"]
    assert orthanc.get_state()["deleted"] == []
    assert restarted.status.to_json()["pending_deletions"] == 0


def test_failed_list_survives_a_restart_and_is_retried_at_once():
    orthanc, gnuhealth, clock, log = FakeOrthanc(), FakeGnuHealth(), FakeClock(), Log()
    sync_with_rejections(orthanc, gnuhealth, clock, log, 2, {"1.2.3.0"})
    assert [f["study_uid"] for f in orthanc.get_state()["failed"]] == ["1.2.3.0"]
    restarted = make_worker(orthanc, gnuhealth, clock, log)
    restarted.run_once()
    assert [f["study_uid"] for f in restarted.status.to_json()["failed"]] == ["1.2.3.0"]
    gnuhealth.rejected_uids = set()
    clock.advance(60)
    run_until_idle(restarted)
    assert restarted.status.to_json()["failed"] == []
    assert orthanc.get_state()["failed"] == []
    assert gnuhealth.pushed_uids().count("1.2.3.0") == 1


def resync_past_its_first_page(count):
    """Return Orthanc, GNU Health, the worker and the sorted study ids once
    the worker synced `count` studies, then began a resync and pushed its
    first page of 3 (ids[0:3]); GNU Health's batches hold the resync's only"""
    orthanc, gnuhealth, clock, log = FakeOrthanc(), FakeGnuHealth(), FakeClock(), Log()
    ids = sorted(store_studies(orthanc, count))
    worker = make_worker(orthanc, gnuhealth, clock, log, studies_per_push=3)
    run_until_idle(worker)
    gnuhealth.batches.clear()
    worker.start_resync()
    worker.run_once()
    return orthanc, gnuhealth, worker, ids


def pushed_ids(gnuhealth):
    return {s["orthanc_id"] for b in gnuhealth.batches for s in b["studies"]}


def test_resync_skips_nothing_when_studies_are_deleted_meanwhile():
    orthanc, gnuhealth, worker, ids = resync_past_its_first_page(12)
    for study_id in ids[:3]:
        orthanc.delete_study(study_id)  # shifts every offset back by 3
    run_until_idle(worker)
    assert pushed_ids(gnuhealth) >= set(ids[3:])
    assert not worker.status.to_json()["resync"]["running"]


def test_resync_survives_the_last_pushed_study_being_deleted():
    orthanc, gnuhealth, worker, ids = resync_past_its_first_page(9)
    orthanc.delete_study(ids[2])
    orthanc.delete_study(ids[1])
    run_until_idle(worker)
    assert pushed_ids(gnuhealth) >= set(ids[3:])


def test_database_outage_faults_back_off_the_whole_sync():
    s = settings()
    for message in ['could not connect to server: Connection refused',
                    'OperationalError: database is locked',
                    'FATAL: terminating connection due to administrator command',
                    'the database system is starting up', 'no such column: a.oe2_template']:
        assert isinstance(classify(xmlrpc.client.Fault(255, message), s),
                          GnuHealthUnavailable), message
    assert isinstance(classify(xmlrpc.client.Fault(255, "KeyError: 'series'"), s),
                      StudyRejected)
    assert isinstance(classify(xmlrpc.client.Fault(1, 'The value of "study_uid" is too long'),
                               s), StudyRejected)


def test_database_outage_keeps_the_cursor_and_failed_list_empty():
    orthanc, clock, log = FakeOrthanc(), FakeClock(), Log()

    class Outage(FakeGnuHealth):
        def push(self, batch):
            raise classify(xmlrpc.client.Fault(255, "could not connect to server"), settings())
    store_studies(orthanc, 3)
    worker = make_worker(orthanc, Outage(), clock, log)
    worker.run_once()
    status = worker.status.to_json()
    assert status["failed"] == [] and status["cursor"] == 0
    assert status["gnuhealth_reachable"] is False


def test_worker_loop_is_restarted_when_something_escapes_it():
    orthanc, gnuhealth, log = FakeOrthanc(), FakeGnuHealth(), Log()
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    worker = SyncWorker(settings(poll_interval=0.02), orthanc, gnuhealth, log)
    original, calls = worker._wait, []

    def exploding_wait():
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt("escaped")
        original()
    worker._wait = exploding_wait
    worker._urgent.wait = lambda timeout=None: None  # no 1 s pause in the test
    assert run_worker_until(worker, lambda: len(calls) > 2, timeout=3)
    assert any("restarted" in line for line in log.at("error"))
    assert gnuhealth.pushed_uids() == ["1.2.3"]

import threading

from orthanc_gnuhealth_plugin.pending import back_off_delay
from orthanc_gnuhealth_plugin.sync import STABLE_GRACE, SyncWorker

from fakes import FakeGnuHealth, FakeOrthanc, run_worker_until, settings


def make_worker(orthanc, gnuhealth, clock, log, **overrides):
    return SyncWorker(settings(**overrides), orthanc, gnuhealth, log, clock=clock)


def run_until_idle(worker, limit=100):
    for _ in range(limit):
        if not worker.run_once():
            return
    raise AssertionError("the worker never became idle")


def store_studies(orthanc, count, instances=1):
    ids = []
    for n in range(count):
        for i in range(instances):
            ids.append(orthanc.store(f"1.2.3.{n}", f"1.2.3.{n}.1", f"1.2.3.{n}.1.{i}",
                                     patient_id=f"P{n}"))
    return sorted(set(ids), key=ids.index)


def sync_with_rejections(orthanc, gnuhealth, clock, log, count, rejected,
                         **overrides):
    """Store `count` studies (UIDs 1.2.3.0, 1.2.3.1, ...), have GNU Health
    reject the UIDs `rejected`, and run a worker until it is idle; return
    the worker and the Orthanc IDs of the studies"""
    ids = store_studies(orthanc, count)
    gnuhealth.rejected_uids = set(rejected)
    worker = make_worker(orthanc, gnuhealth, clock, log, **overrides)
    run_until_idle(worker)
    return worker, ids


def test_new_study_is_pushed_and_cursor_advances(orthanc, gnuhealth, clock, log):
    study_id = orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    assert gnuhealth.pushed_uids() == ["1.2.3"]
    batch = gnuhealth.batches[0]
    assert batch["server"] == {
        "label": "orthanc", "public_url": "http://localhost:8042",
        "viewers": ["explorer", "webviewer"],
        "templates": dict(settings().viewer_templates), "accession_issuers": []}
    study = batch["studies"][0]
    assert study["orthanc_id"] == study_id
    assert study["complete"] is False
    assert [s["series_uid"] for s in study["series"]] == ["1.2.3.1"]
    assert orthanc.cursor_property == str(orthanc.last_seq)
    status = worker.status.to_json()
    assert (status["cursor"], status["last_change"], status["pending"]) == (4, 4, 0)
    assert status["gnuhealth_reachable"] is True
    assert status["last_push"]["studies"] == 1


def test_stable_study_is_pushed_again_as_complete(orthanc, gnuhealth, clock, log):
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    orthanc.stabilize()
    run_until_idle(worker)
    assert [s["complete"] for b in gnuhealth.batches for s in b["studies"]] == [False, True]


def test_study_received_by_another_cluster_node_is_complete_only_at_stable_study(
        orthanc, gnuhealth, clock, log):
    orthanc.other_node = True
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    orthanc.store("1.2.3", "1.2.3.2", "1.2.3.2.1")
    clock.advance(1)  # re-read at most once per PollInterval (push.py)
    run_until_idle(worker)
    orthanc.stabilize()
    run_until_idle(worker)
    pushed = [(s["complete"], sum(len(se["instances"]) for se in s["series"]))
              for b in gnuhealth.batches for s in b["studies"]]
    assert pushed == [(False, 1), (False, 2), (True, 2)]


def test_cursor_is_read_from_orthanc_and_old_changes_are_not_replayed(
        orthanc, gnuhealth, clock, log):
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    orthanc.set_cursor(orthanc.last_seq)
    orthanc.store("1.2.4", "1.2.4.1", "1.2.4.1.1")
    run_until_idle(make_worker(orthanc, gnuhealth, clock, log))
    assert gnuhealth.pushed_uids() == ["1.2.4"]


def test_pages_and_chunks(orthanc, gnuhealth, clock, log):
    store_studies(orthanc, 7)  # 4 changes per study: 28 changes
    worker = make_worker(orthanc, gnuhealth, clock, log, batch_size=10, studies_per_push=2)
    run_until_idle(worker)
    # A study whose changes straddle two pages is pushed twice (idempotent).
    assert sorted(set(gnuhealth.pushed_uids())) == [f"1.2.3.{n}" for n in range(7)]
    # One RPC call per chunk, never more than StudiesPerPush studies in one.
    assert max(len(b["studies"]) for b in gnuhealth.batches) == 2
    # The cursor moved page by page, each time only after the pushes.
    assert orthanc.cursor_writes == [10, 20, 28]


def test_cursor_is_not_advanced_when_gnuhealth_is_unreachable(orthanc, gnuhealth, clock, log):
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    gnuhealth.unreachable = True
    worker = make_worker(orthanc, gnuhealth, clock, log)
    assert worker.run_once() is False
    assert orthanc.cursor_writes == []
    status = worker.status.to_json()
    assert status["gnuhealth_reachable"] is False
    assert "unreachable" in status["last_error"]
    assert status["pending"] == 4
    orthanc.store("1.2.4", "1.2.4.1", "1.2.4.1.1")
    # Read while the worker sleeps: still exact.
    assert worker.status_now()["pending"] == 7  # same patient: no NewPatient
    worker.run_once()  # still backing off
    assert gnuhealth.calls == 1


def test_unreachable_backs_off_exponentially_then_delivers_everything(
        orthanc, gnuhealth, clock, log):
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    gnuhealth.unreachable = True
    worker = make_worker(orthanc, gnuhealth, clock, log, retry_min_delay=1, retry_max_delay=4)
    attempts = []
    for _ in range(100):  # 25 simulated seconds in 0.25 s steps
        calls = gnuhealth.calls
        worker.run_once()
        if gnuhealth.calls > calls:
            attempts.append(clock.now)
        clock.advance(0.25)
    gaps = [round(b - a, 2) for a, b in zip(attempts, attempts[1:])]
    assert gaps[:3] == [1.0, 2.0, 4.0]
    assert set(gaps[3:]) == {4.0}  # capped at RetryMaxDelay
    gnuhealth.unreachable = False
    clock.advance(4)
    run_until_idle(worker)
    assert gnuhealth.pushed_uids() == ["1.2.3"]
    assert orthanc.cursor_property == str(orthanc.last_seq)
    assert worker.status.to_json()["gnuhealth_reachable"] is True


def test_back_off_delay():
    s = settings(retry_min_delay=1, retry_max_delay=300)
    assert [back_off_delay(s, n) for n in range(0, 11)] == [
        0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert back_off_delay(s, 10_000) == 300


def test_rejected_study_is_isolated_and_does_not_hold_back_the_cursor(
        orthanc, gnuhealth, clock, log):
    worker, ids = sync_with_rejections(orthanc, gnuhealth, clock, log, 3, {"1.2.3.1"})
    assert sorted(gnuhealth.pushed_uids()) == ["1.2.3.0", "1.2.3.2"]
    assert orthanc.cursor_property == str(orthanc.last_seq)
    [failed] = worker.status.to_json()["failed"]
    assert failed["study_uid"] == "1.2.3.1"
    assert failed["orthanc_id"] == ids[1]
    assert "no valid patient" in failed["reason"]
    assert failed["retries"] == 0
    assert any("1.2.3.1" in line for line in log.at("error"))


def test_a_rejection_means_gnuhealth_is_reachable(orthanc, gnuhealth, clock, log):
    worker, _ = sync_with_rejections(orthanc, gnuhealth, clock, log, 1, {"1.2.3.0"})
    assert worker.status.to_json()["gnuhealth_reachable"] is True
    assert worker.status.to_json()["last_error"] is None


def test_failed_study_is_retried_later_with_its_own_back_off(orthanc, gnuhealth, clock, log):
    worker, _ = sync_with_rejections(orthanc, gnuhealth, clock, log, 2, {"1.2.3.1"},
                                     retry_min_delay=10, retry_max_delay=1000)
    pushes = gnuhealth.calls
    clock.advance(5)
    run_until_idle(worker)
    assert gnuhealth.calls == pushes  # not due yet
    clock.advance(5)
    run_until_idle(worker)
    assert gnuhealth.calls == pushes + 1
    assert worker.status.to_json()["failed"][0]["retries"] == 1
    # The next retry waits twice as long.
    clock.advance(10)
    run_until_idle(worker)
    assert gnuhealth.calls == pushes + 1
    gnuhealth.rejected_uids = set()
    clock.advance(10)
    run_until_idle(worker)
    assert gnuhealth.pushed_uids()[-1] == "1.2.3.1"
    assert worker.status.to_json()["failed"] == []


def test_failed_study_is_pushed_on_demand(orthanc, gnuhealth, clock, log):
    worker, ids = sync_with_rejections(orthanc, gnuhealth, clock, log, 2, {"1.2.3.1"})
    assert worker.sync_study(ids[1])["result"] == "rejected"
    assert worker.status.to_json()["failed"][0]["retries"] == 1
    gnuhealth.rejected_uids = set()
    assert worker.sync_study(ids[1]) == {
        "orthanc_id": ids[1], "study_uid": "1.2.3.1", "result": "pushed"}
    assert worker.status.to_json()["failed"] == []


def test_sync_of_unknown_study(orthanc, gnuhealth, clock, log):
    worker = make_worker(orthanc, gnuhealth, clock, log)
    assert worker.sync_study("nope")["result"] == "not-found"
    assert gnuhealth.calls == 0


def test_request_sync_is_served_by_the_worker_thread(orthanc, gnuhealth, clock, log):
    [study_id] = store_studies(orthanc, 1)
    worker = make_worker(orthanc, gnuhealth, clock, log)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        result = worker.request_sync(study_id, timeout=5)
    finally:
        worker.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert result["result"] == "pushed"


def test_failed_study_deleted_from_orthanc_leaves_the_failed_list(
        orthanc, gnuhealth, clock, log):
    worker, ids = sync_with_rejections(orthanc, gnuhealth, clock, log, 1, {"1.2.3.0"})
    assert len(worker.status.to_json()["failed"]) == 1
    orthanc.delete_study(ids[0])
    clock.advance(3600)
    run_until_idle(worker)
    assert worker.status.to_json()["failed"] == []


def test_deletions_noted_by_the_callback_are_pushed(orthanc, gnuhealth, clock, log):
    [study_id] = store_studies(orthanc, 1)
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    for level, resource_id in orthanc.delete_study(study_id):
        worker.note_deleted(level, resource_id)
    worker.note_deleted("Patient", "ignored")
    run_until_idle(worker)
    assert gnuhealth.batches[-1]["studies"] == []
    assert [d["level"] for d in gnuhealth.deleted()] == ["study", "series", "instance"]
    assert gnuhealth.deleted()[0]["orthanc_id"] == study_id


def test_deletions_survive_an_outage(orthanc, gnuhealth, clock, log):
    worker = make_worker(orthanc, gnuhealth, clock, log)
    gnuhealth.unreachable = True
    worker.note_deleted("Study", "abc")
    worker.run_once()
    gnuhealth.unreachable = False
    clock.advance(60)
    run_until_idle(worker)
    assert gnuhealth.deleted() == [{"level": "study", "orthanc_id": "abc"}]


def test_study_deleted_and_received_again_is_not_marked_deleted(
        orthanc, gnuhealth, clock, log):
    [study_id] = store_studies(orthanc, 1)
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    for level, resource_id in orthanc.delete_study(study_id):
        worker.note_deleted(level, resource_id)
    store_studies(orthanc, 1)
    run_until_idle(worker)
    assert gnuhealth.batches[-1]["studies"][0]["orthanc_id"] == study_id
    assert gnuhealth.deleted() == []  # Orthanc has them all again


def test_study_deleted_before_it_was_pushed_is_skipped(orthanc, gnuhealth, clock, log):
    ids = store_studies(orthanc, 2)
    orthanc.delete_study(ids[0])
    # The SQLite index drops the study's changes, but another index may not.
    orthanc._log("NewStudy", "Study", ids[0], "studies")
    run_until_idle(make_worker(orthanc, gnuhealth, clock, log))
    assert gnuhealth.pushed_uids() == ["1.2.3.1"]


def test_change_log_reset_rescans_from_zero(orthanc, gnuhealth, clock, log):
    store_studies(orthanc, 3)
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    assert worker.status.to_json()["cursor"] == 12
    orthanc.replace_database()
    orthanc.cursor_property = "12"  # the property survived (e.g. another node)
    store_studies(orthanc, 1)
    gnuhealth.batches.clear()
    run_until_idle(worker)
    assert gnuhealth.pushed_uids() == ["1.2.3.0"]
    assert worker.status.to_json()["cursor"] == 4
    assert any("restarted" in line for line in log.at("warning"))


def test_resync_pushes_the_whole_archive_with_progress(orthanc, gnuhealth, clock, log):
    store_studies(orthanc, 5)
    worker = make_worker(orthanc, gnuhealth, clock, log, studies_per_push=2)
    run_until_idle(worker)
    gnuhealth.batches.clear()
    assert worker.start_resync() is True
    assert worker.start_resync() is False  # already running
    assert worker.status.to_json()["resync"] == {"running": True, "done": 0, "total": 5}
    progress = []
    while worker.run_once():
        progress.append(worker.status.to_json()["resync"]["done"])
    assert progress == [2, 4, 5]
    assert worker.status.to_json()["resync"] == {"running": False, "done": 5, "total": 5}
    assert sorted(gnuhealth.pushed_uids()) == [f"1.2.3.{n}" for n in range(5)]
    # Never more than one page of the archive asked at a time.
    assert all("limit=4" in p for p in orthanc.requests if p.startswith("/studies?"))
    assert worker.start_resync() is True


def test_resync_waits_for_gnuhealth(orthanc, gnuhealth, clock, log):
    store_studies(orthanc, 3)
    orthanc.set_cursor(orthanc.last_seq)
    worker = make_worker(orthanc, gnuhealth, clock, log, studies_per_push=2)
    worker.start_resync()
    gnuhealth.unreachable = True
    worker.run_once()
    assert worker.status.to_json()["resync"]["done"] == 0
    gnuhealth.unreachable = False
    clock.advance(60)
    run_until_idle(worker)
    assert sorted(gnuhealth.pushed_uids()) == ["1.2.3.0", "1.2.3.1", "1.2.3.2"]


class ExplodingOrthanc(FakeOrthanc):
    def __init__(self):
        super().__init__()
        self.explode = 2

    def get(self, path):
        if path.startswith("/changes") and self.explode:
            self.explode -= 1
            raise RuntimeError("boom")
        return super().get(path)


def test_thread_survives_unexpected_errors(gnuhealth, log):
    orthanc = ExplodingOrthanc()
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    worker = SyncWorker(settings(retry_min_delay=0.01, retry_max_delay=0.02,
                                 poll_interval=0.02), orthanc, gnuhealth, log)
    assert run_worker_until(worker, lambda: gnuhealth.batches, timeout=2)
    assert gnuhealth.pushed_uids() == ["1.2.3"]
    assert len([line for line in log.at("error") if "boom" in line]) == 2


class WaitWatch(threading.Event):
    """The worker's wake event, telling the test when the worker waits on it."""

    def __init__(self):
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout=None):
        self.waiting.set()
        return super().wait(timeout)


def test_wake_interrupts_the_poll_wait(orthanc, gnuhealth, log):
    worker = SyncWorker(settings(poll_interval=30), orthanc, gnuhealth, log)
    worker._wake = WaitWatch()

    def store_and_wake():
        # The worker found nothing and sleeps for up to 30 s: only the wake
        # can make it push within the 5 s below.
        assert worker._wake.waiting.wait(5)
        assert gnuhealth.calls == 0
        orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
        worker.wake()
    run_worker_until(worker, lambda: gnuhealth.batches, meanwhile=store_and_wake)
    assert gnuhealth.pushed_uids() == ["1.2.3"]


def test_iso_2022_text_is_pushed_as_pydicom_reads_it_at_one_read_per_study(
        orthanc, gnuhealth, clock, log):
    # chrJapMultiExplicitIR6.dcm's bytes; Orthanc 1.10.1 shows the escapes.
    study_id = orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1", patient_tags={
        "PatientName": "$B$d$^$@(B^$B$?$m$&(B"}, study_tags={"AccessionNumber": "001"})
    instance, = orthanc.instances
    orthanc.raw_tags[instance] = {
        "0008-0005": b"ISO 2022 IR 6\\ISO 2022 IR 87",
        "0010-0010": b"\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B ",
        "0008-1030": b"Chest ",
        "0008-0051/0/0040-0031": b"HOSP-RIS"}
    worker = make_worker(orthanc, gnuhealth, clock, log,
                         local_accession_issuers=("HOSP-RIS",))
    run_until_idle(worker)
    record = gnuhealth.batches[-1]["studies"][0]
    assert (record["dicom_patient_name"], record["description"],
            record["accession_issuer"]) == ("やまだ^たろう", "Chest", "HOSP-RIS")
    assert gnuhealth.batches[-1]["server"]["accession_issuers"] == ["HOSP-RIS"]
    reads = [p for p in orthanc.requests if "/content/" in p]
    assert [p.split("/content/")[1] for p in reads] == [
        "0008-0005", "0008-0051/0", "0008-0051/0/0040-0031",
        "0010-0010", "0008-1030", "0008-103e"]
    orthanc.stabilize()
    run_until_idle(worker)
    assert gnuhealth.batches[-1]["studies"][0]["orthanc_id"] == study_id
    assert gnuhealth.batches[-1]["studies"][0]["dicom_patient_name"] == "やまだ^たろう"
    assert [p for p in orthanc.requests if "/content/" in p] == reads


# ---- completeness that survives a crash ----

def pushed(gnuhealth):
    return [(s["complete"], sum(len(se["instances"]) for se in s["series"]))
            for b in gnuhealth.batches for s in b["studies"]]


def test_a_study_cut_by_a_crash_is_complete_after_stable_age(orthanc, gnuhealth, clock, log):
    [study_id] = store_studies(orthanc, 1, instances=2)
    run_until_idle(make_worker(orthanc, gnuhealth, clock, log))
    assert list(orthanc.get_state()["receiving"]) == [study_id]
    # Orthanc is killed: its stability timers are gone, no StableStudy will
    # come, and after the restart IsStable says true.
    orthanc.studies[study_id]["IsStable"] = True
    restarted = make_worker(orthanc, gnuhealth, clock, log)
    clock.advance(orthanc.stable_age() + STABLE_GRACE - 1)
    run_until_idle(restarted)
    assert restarted.status.get("receiving") == 1
    assert pushed(gnuhealth) == [(False, 2)]
    clock.advance(1)
    run_until_idle(restarted)
    assert pushed(gnuhealth) == [(False, 2), (True, 2)]
    assert orthanc.get_state()["receiving"] == {}
    assert restarted.status.get("receiving") == 0
    assert any("1.2.3.0" in line and "had no new instance for 65 s and no StableStudy"
               in line for line in log.at("info"))


def test_a_new_instance_restarts_the_quiet_time(orthanc, gnuhealth, clock, log):
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    clock.advance(50)
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.2")  # only a NewInstance change
    run_until_idle(worker)
    clock.advance(15)
    run_until_idle(worker)  # 65 s since the first sight: LastUpdate moved
    assert pushed(gnuhealth) == [(False, 1)]
    clock.advance(64)
    run_until_idle(worker)
    assert pushed(gnuhealth) == [(False, 1)]
    clock.advance(1)
    run_until_idle(worker)
    assert pushed(gnuhealth) == [(False, 1), (True, 2)]


def test_stable_study_ends_the_watch(orthanc, gnuhealth, clock, log):
    store_studies(orthanc, 1)
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    orthanc.stabilize()
    run_until_idle(worker)
    assert orthanc.get_state()["receiving"] == {}
    clock.advance(3600)
    run_until_idle(worker)
    assert pushed(gnuhealth) == [(False, 1), (True, 1)]


def test_the_wait_ends_when_a_quiet_study_is_due(orthanc, gnuhealth, clock, log):
    store_studies(orthanc, 1)
    worker = make_worker(orthanc, gnuhealth, clock, log, poll_interval=3600)
    run_until_idle(worker)
    clock.advance(15)
    assert worker._next_deadline() - clock.now == 60 + STABLE_GRACE - 15


# ---- gaps in the change numbers ----

def hide_changes(orthanc, study_id):
    """The study's changes, taken out of the log as if another node's
    transaction had not committed them yet."""
    hidden = [c for c in orthanc.changes if c["ID"] == study_id or
              orthanc.series.get(c["ID"], {}).get("ParentStudy") == study_id or
              c["ID"] in {i for s in orthanc.studies[study_id]["Series"]
                          for i in orthanc.series[s]["Instances"]}]
    orthanc.changes = [c for c in orthanc.changes if c not in hidden]
    return hidden


def test_the_cursor_waits_at_a_gap_for_the_missing_changes(orthanc, gnuhealth, clock, log):
    first = orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1", patient_id="A")
    late = orthanc.store("1.2.4", "1.2.4.1", "1.2.4.1.1", patient_id="B")
    hidden = hide_changes(orthanc, late)
    third = orthanc.store("1.2.5", "1.2.5.1", "1.2.5.1.1", patient_id="C")
    worker = make_worker(orthanc, gnuhealth, clock, log, change_gap_wait=10)
    run_until_idle(worker)
    assert [s["orthanc_id"] for b in gnuhealth.batches for s in b["studies"]] == [first]
    assert orthanc.cursor_property == "4"
    assert worker._next_deadline() == clock.now + 10
    clock.advance(5)
    orthanc.changes = sorted(orthanc.changes + hidden, key=lambda c: c["Seq"])
    run_until_idle(worker)
    assert [s["orthanc_id"] for b in gnuhealth.batches[1:] for s in b["studies"]] == [
        late, third]
    assert orthanc.cursor_property == str(orthanc.last_seq)


def test_a_gap_that_never_fills_is_passed_after_the_wait(orthanc, gnuhealth, clock, log):
    orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1", patient_id="A")
    late = orthanc.store("1.2.4", "1.2.4.1", "1.2.4.1.1", patient_id="B")
    hide_changes(orthanc, late)  # a rolled-back transaction, say
    third = orthanc.store("1.2.5", "1.2.5.1", "1.2.5.1.1", patient_id="C")
    worker = make_worker(orthanc, gnuhealth, clock, log, change_gap_wait=10)
    run_until_idle(worker)
    clock.advance(9.9)
    run_until_idle(worker)
    assert orthanc.cursor_property == "4"
    clock.advance(0.1)
    run_until_idle(worker)
    assert [s["orthanc_id"] for b in gnuhealth.batches[1:] for s in b["studies"]] == [third]
    assert orthanc.cursor_property == str(orthanc.last_seq)
    assert ("GNU Health: change(s) 5 to 7 did not appear in Orthanc's log within 10 s; "
            "moving on (a resource deleted, or a transaction rolled back)") in log.at("info")


# ---- conflicts GNU Health reports ----

def test_the_status_lists_the_studies_gnu_health_holds_in_conflict(
        orthanc, gnuhealth, clock, log):
    # One StudyInstanceUID under two PatientIDs: two Orthanc studies.
    first = orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1", patient_id="A")
    second = orthanc.store("1.2.3", "1.2.3.2", "1.2.3.2.1", patient_id="B")
    note = "the same study UID 1.2.3 arrived for patients A and B"
    gnuhealth.conflicts = {first: note, second: note}
    worker = make_worker(orthanc, gnuhealth, clock, log)
    run_until_idle(worker)
    assert worker.status.to_json()["conflicts"] == sorted(
        [{"orthanc_id": first, "note": note}, {"orthanc_id": second, "note": note}],
        key=lambda c: c["orthanc_id"])
    # Staff settled the first: its next push no longer names it.
    gnuhealth.conflicts = {second: note}
    assert worker.sync_study(first)["result"] == "pushed"
    assert worker.status.to_json()["conflicts"] == [{"orthanc_id": second, "note": note}]


# ---- a study still receiving is read at most once per PollInterval ----

def reads(orthanc, study_id):
    return orthanc.requests.count(f"/studies/{study_id}/instances")


def test_a_receiving_study_is_read_at_most_once_per_poll_interval(
        orthanc, gnuhealth, clock, log):
    study_id = orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.0")
    worker = make_worker(orthanc, gnuhealth, clock, log, poll_interval=10)
    first_read = clock.now
    run_until_idle(worker)  # the first sight: pushed at once
    assert (reads(orthanc, study_id), pushed(gnuhealth)) == (1, [(False, 1)])
    for n in range(1, 30):  # 29 more instances, 2 more series, within the interval
        orthanc.store("1.2.3", f"1.2.3.{n // 10 + 1}", f"1.2.3.{n // 10 + 1}.{n}")
        clock.advance(0.3)
        run_until_idle(worker)
    assert (reads(orthanc, study_id), pushed(gnuhealth)) == (1, [(False, 1)])
    assert worker._next_deadline() == first_read + 10  # the deferred read
    clock.now = first_read + 10
    run_until_idle(worker)
    assert (reads(orthanc, study_id), pushed(gnuhealth)) == (2, [(False, 1), (False, 30)])
    clock.advance(9)
    run_until_idle(worker)  # nothing new since: no read
    assert reads(orthanc, study_id) == 2
    orthanc.stabilize()  # StableStudy: pushed at once, whatever the interval
    run_until_idle(worker)
    assert (reads(orthanc, study_id), pushed(gnuhealth)[-1]) == (3, (True, 30))


def test_a_new_study_is_pushed_at_once_while_another_waits(orthanc, gnuhealth, clock, log):
    first = orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1", patient_id="A")
    worker = make_worker(orthanc, gnuhealth, clock, log, poll_interval=10)
    run_until_idle(worker)
    orthanc.store("1.2.3", "1.2.3.2", "1.2.3.2.1", patient_id="A")  # deferred
    second = orthanc.store("1.2.4", "1.2.4.1", "1.2.4.1.1", patient_id="B")
    run_until_idle(worker)
    assert [s["orthanc_id"] for b in gnuhealth.batches for s in b["studies"]] == [first, second]
    clock.advance(10)
    run_until_idle(worker)
    assert [s["orthanc_id"] for b in gnuhealth.batches for s in b["studies"]] == [
        first, second, first]


def test_a_complete_study_is_pushed_before_those_still_receiving(
        orthanc, gnuhealth, clock, log):
    stable = orthanc.store("1.2.3", "1.2.3.1", "1.2.3.1.1", patient_id="A")
    worker = make_worker(orthanc, gnuhealth, clock, log, studies_per_push=1)
    run_until_idle(worker)
    new = [orthanc.store(f"1.2.{n}", f"1.2.{n}.1", f"1.2.{n}.1.1", patient_id="B")
           for n in (4, 5)]
    # The first study's StableStudy, logged after the two new studies.
    orthanc.studies[stable]["IsStable"] = True
    orthanc._log("StableStudy", "Study", stable, "studies")
    run_until_idle(worker)
    assert [(s["orthanc_id"], s["complete"]) for b in gnuhealth.batches[1:]
            for s in b["studies"]] == [(stable, True), (new[0], False), (new[1], False)]


# ---- the resync reads the next page while GNU Health stores one ----

class ReadWatchingOrthanc(FakeOrthanc):
    "Sets reads[path] (an Event) when the worker, from any thread, GETs path."

    def __init__(self):
        super().__init__()
        self.reads = {}

    def get(self, path):
        if path in self.reads:
            self.reads[path].set()
        return super().get(path)


class WaitingGnuHealth(FakeGnuHealth):
    "A push of a batch starting with a study in `wait_for` waits for its Event."

    def __init__(self):
        super().__init__()
        self.wait_for, self.overlapped = {}, []

    def push(self, batch):
        first = batch["studies"][0]["orthanc_id"] if batch["studies"] else None
        if first in self.wait_for:
            self.overlapped.append(self.wait_for[first].wait(5))
        return super().push(batch)


def test_the_resync_reads_the_next_page_while_gnu_health_stores_one(clock, log):
    orthanc, gnuhealth = ReadWatchingOrthanc(), WaitingGnuHealth()
    ids = sorted(store_studies(orthanc, 6))
    worker = make_worker(orthanc, gnuhealth, clock, log, studies_per_push=2)
    run_until_idle(worker)
    gnuhealth.batches.clear()
    for page, following in ((ids[0], ids[2]), (ids[2], ids[4])):
        orthanc.reads[f"/studies/{following}"] = threading.Event()
        gnuhealth.wait_for[page] = orthanc.reads[f"/studies/{following}"]
    worker.start_resync()
    progress = []
    while worker.run_once():
        progress.append(worker.status.to_json()["resync"]["done"])
    # Each push waited for the read of the next page's first study: both
    # happened at once (one page ahead, not more).
    assert gnuhealth.overlapped == [True, True]
    assert progress == [2, 4, 6]
    assert sorted(gnuhealth.pushed_uids()) == [f"1.2.3.{n}" for n in range(6)]


def test_a_page_read_ahead_is_not_pushed_after_a_deletion(orthanc, gnuhealth, clock, log):
    ids = sorted(store_studies(orthanc, 4))
    worker = make_worker(orthanc, gnuhealth, clock, log, studies_per_push=2)
    run_until_idle(worker)
    worker.start_resync()
    worker.run_once()  # pushes ids[0:2], reads ids[2:4] ahead
    for level, resource_id in orthanc.delete_study(ids[2]):
        worker.note_deleted(level, resource_id)
    run_until_idle(worker)
    assert gnuhealth.pacs_state[ids[2]] == "deleted"
    assert gnuhealth.pacs_state[ids[3]] == "available"
    assert not worker.status.to_json()["resync"]["running"]

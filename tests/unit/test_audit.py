"""The continuous audit: every path to divergence is found and repaired,
page by page, paced, and only while the change log is drained."""
import datetime

from orthanc_gnuhealth_plugin.sync import STABLE_GRACE

from test_sync import make_worker, run_until_idle, store_studies

INTERVAL = 10


def audited_worker(orthanc, gnuhealth, clock, log, **overrides):
    values = dict(audit_interval=INTERVAL, audit_page_size=100)
    values.update(overrides)
    return make_worker(orthanc, gnuhealth, clock, log, **values)


def full_pass(worker, clock, limit=50):
    """Run the worker, advancing the clock page by page, until one more
    audit pass has ended; returns the number of pages it took."""
    before = worker.status.get("audit")["last_full_pass"]
    for pages in range(1, limit):
        run_until_idle(worker)
        if worker.status.get("audit")["last_full_pass"] not in (None, before):
            return pages
        clock.advance(INTERVAL)
    raise AssertionError("the audit never finished a pass")


def synced_archive(orthanc, gnuhealth, clock, log, count=3, series=1, instances=2):
    """`count` stable studies, already in GNU Health; returns their ids."""
    ids = []
    for n in range(count):
        for s in range(series):
            for i in range(instances):
                ids.append(orthanc.store(f"1.2.3.{n}", f"1.2.3.{n}.{s}", f"1.2.3.{n}.{s}.{i}",
                                         patient_id=f"P{n}"))
    orthanc.stabilize()
    run_until_idle(make_worker(orthanc, gnuhealth, clock, log))
    return list(dict.fromkeys(ids))  # in the order of their UIDs


def test_a_series_deleted_while_nobody_watched_is_repaired(orthanc, gnuhealth, clock, log):
    ids = synced_archive(orthanc, gnuhealth, clock, log, series=2)
    doomed = orthanc.studies[ids[1]]["Series"][0]
    orthanc.delete_series(doomed)  # no callback: the plugin was stopped
    worker = audited_worker(orthanc, gnuhealth, clock, log)
    full_pass(worker, clock)
    record = gnuhealth.records[ids[1]]
    assert [s["orthanc_id"] for s in record["series"]] == orthanc.studies[ids[1]]["Series"]
    [line] = [line for line in log.at("warning") if "audit: repaired" in line]
    assert "1.2.3.1" in line and ids[1] in line
    assert "series: 2 in GNU Health, 1 in Orthanc" in line
    assert "instances: 4 in GNU Health, 2 in Orthanc" in line
    audit = worker.status.get("audit")
    assert (audit["checked"], audit["repaired"]) == (3 + 3, 1)  # both directions
    assert audit["last_full_pass"] == datetime.datetime.fromtimestamp(
        clock.now, datetime.timezone.utc).isoformat(timespec="seconds")


def test_an_instance_row_removed_in_gnuhealth_is_repaired(orthanc, gnuhealth, clock, log):
    ids = synced_archive(orthanc, gnuhealth, clock, log)
    gnuhealth.records[ids[0]]["series"][0]["instances"].pop()  # removed by hand
    worker = audited_worker(orthanc, gnuhealth, clock, log)
    full_pass(worker, clock)
    assert gnuhealth.summary(ids[0])["instances"] == 2
    [line] = [line for line in log.at("warning") if "audit: repaired" in line]
    assert "1.2.3.0" in line and "instances: 1 in GNU Health, 2 in Orthanc" in line


def test_a_different_last_update_or_a_missing_study_is_repaired(
        orthanc, gnuhealth, clock, log):
    ids = synced_archive(orthanc, gnuhealth, clock, log)
    gnuhealth.records[ids[0]]["last_update"] = "20000101T000000"
    del gnuhealth.records[ids[2]]  # e.g. the cluster gap: never pushed
    worker = audited_worker(orthanc, gnuhealth, clock, log)
    full_pass(worker, clock)
    lines = sorted(line for line in log.at("warning") if "audit: repaired" in line)
    assert len(lines) == 2
    assert "LastUpdate: 20000101T000000 in GNU Health" in lines[0]
    assert "1.2.3.2" in lines[1] and "not in GNU Health" in lines[1]
    assert gnuhealth.summary(ids[2])["instances"] == 2
    # Everything agrees now: the next pass repairs nothing.
    full_pass(worker, clock)
    assert worker.status.get("audit")["repaired"] == 2


def test_studies_deleted_while_nobody_watched_are_marked_deleted(
        orthanc, gnuhealth, clock, log):
    ids = synced_archive(orthanc, gnuhealth, clock, log, count=5)
    orthanc.delete_study(ids[1])
    orthanc.delete_study(ids[3])
    worker = audited_worker(orthanc, gnuhealth, clock, log)
    full_pass(worker, clock)
    assert sorted(d["orthanc_id"] for d in gnuhealth.deleted()) == sorted([ids[1], ids[3]])
    lines = [line for line in log.at("warning") if "no longer in Orthanc" in line]
    assert sorted(lines) == sorted(
        f"GNU Health audit: repaired study (Orthanc {i}): available in GNU Health, no "
        f"longer in Orthanc; marked deleted from the PACS" for i in (ids[1], ids[3]))


def test_pages_are_paced_by_the_interval(orthanc, gnuhealth, clock, log):
    synced_archive(orthanc, gnuhealth, clock, log, count=7)
    worker = audited_worker(orthanc, gnuhealth, clock, log, audit_page_size=3)
    run_until_idle(worker)
    assert gnuhealth.summaries == [sorted(orthanc.studies)[:3]]
    clock.advance(INTERVAL - 1)
    run_until_idle(worker)
    assert len(gnuhealth.summaries) == 1  # not due yet
    clock.advance(1)
    run_until_idle(worker)
    assert gnuhealth.summaries[1] == sorted(orthanc.studies)[3:6]
    # 7 studies: 3 Orthanc pages, then 3 GNU Health pages.
    assert full_pass(worker, clock) == 5
    assert len(gnuhealth.summaries) == 3


def test_the_audit_waits_for_the_change_log_to_drain(orthanc, gnuhealth, clock, log):
    synced_archive(orthanc, gnuhealth, clock, log)
    for n in range(10):  # 40 new changes, read 10 at a time
        orthanc.store(f"1.2.4.{n}", f"1.2.4.{n}.1", f"1.2.4.{n}.1.1", patient_id=f"Q{n}")
    orthanc.stabilize()
    worker = audited_worker(orthanc, gnuhealth, clock, log, batch_size=10)
    while worker.run_once():
        assert gnuhealth.summaries == []
    assert len(gnuhealth.summaries) == 1


def test_without_audit_summary_only_deletions_are_compared(orthanc, gnuhealth, clock, log):
    ids = synced_archive(orthanc, gnuhealth, clock, log)
    gnuhealth.can_summarize = False
    orthanc.delete_study(ids[0])
    worker = audited_worker(orthanc, gnuhealth, clock, log)
    full_pass(worker, clock)
    full_pass(worker, clock)
    assert worker.status.get("audit")["supported"] is False
    assert [line for line in log.at("warning") if "audit_summary" in line] == [
        "GNU Health: the audit cannot compare studies, GNU Health has no audit_summary "
        "(model.gnuhealth.radiology.study.audit_summary refused); update health_radiology. "
        "Only deletions are compared."]
    assert [d["orthanc_id"] for d in gnuhealth.deleted()] == [ids[0]]


def test_a_study_left_receiving_is_completed_after_stable_age(orthanc, gnuhealth, clock, log):
    [study_id] = store_studies(orthanc, 1, instances=2)
    run_until_idle(make_worker(orthanc, gnuhealth, clock, log))
    assert gnuhealth.summary(study_id)["reception"] == "receiving"
    orthanc.state_property = ""  # the state was lost: no timer knows the study
    worker = audited_worker(orthanc, gnuhealth, clock, log)
    full_pass(worker, clock)
    assert worker.status.get("receiving") == 1
    assert gnuhealth.summary(study_id)["reception"] == "receiving"
    clock.advance(orthanc.stable_age() + STABLE_GRACE)
    run_until_idle(worker)
    assert gnuhealth.summary(study_id)["reception"] == "complete"
    assert worker.status.get("audit")["repaired"] == 0


def test_audit_off(orthanc, gnuhealth, clock, log):
    ids = synced_archive(orthanc, gnuhealth, clock, log)
    orthanc.delete_study(ids[0])
    worker = audited_worker(orthanc, gnuhealth, clock, log, audit_interval=0)
    for _ in range(5):
        run_until_idle(worker)
        clock.advance(INTERVAL)
    assert gnuhealth.summaries == [] and gnuhealth.deleted() == []

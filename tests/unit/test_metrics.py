from orthanc_gnuhealth_plugin.metrics import Metrics
from orthanc_gnuhealth_plugin.status import Status


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def status(**values):
    current = Status()
    current.update(**values)
    return current.to_json()


def test_lag_counts_from_when_the_worker_was_last_caught_up():
    clock = Clock()
    metrics = Metrics(clock)
    assert metrics.values(status(cursor=5, last_change=5), {})[
        "gnuhealth_sync_lag_seconds"] == 0
    clock.now += 7
    values = metrics.values(status(cursor=5, last_change=9), {})
    assert values["gnuhealth_sync_lag_seconds"] == 7
    assert values["gnuhealth_pending_changes"] == 4
    clock.now += 5
    assert metrics.values(status(cursor=8, last_change=9), {})[
        "gnuhealth_sync_lag_seconds"] == 12
    clock.now += 1
    assert metrics.values(status(cursor=9, last_change=9), {})[
        "gnuhealth_sync_lag_seconds"] == 0


def test_counters_from_the_status_and_the_worklist():
    current = Status()
    current.update(pushes=3, gnuhealth_reachable=True,
                   last_push={"at": "x", "studies": 2, "deleted": 0, "seconds": 0.25},
                   audit={"running": False, "checked": 9, "repaired": 2,
                          "last_full_pass": None, "supported": True})
    current.set_failed([{"orthanc_id": "a"}, {"orthanc_id": "b"}])
    values = Metrics(Clock()).values(current.to_json(),
                                     {"queries": 4, "age_seconds": 2.5})
    assert values == {
        "gnuhealth_sync_lag_seconds": 0.0, "gnuhealth_pending_changes": 0.0,
        "gnuhealth_failed_studies": 2.0, "gnuhealth_pushes_total": 3.0,
        "gnuhealth_last_push_duration_seconds": 0.25, "gnuhealth_reachable": 1.0,
        "gnuhealth_audit_repairs_total": 2.0, "gnuhealth_worklist_queries_total": 4.0,
        "gnuhealth_worklist_age_seconds": 2.5}


def test_worklist_never_loaded_or_disabled():
    metrics = Metrics(Clock())
    assert metrics.values(status(), {"queries": 0, "age_seconds": None})[
        "gnuhealth_worklist_age_seconds"] == -1
    assert not any("worklist" in name for name in metrics.values(status(), {"enabled": False}))

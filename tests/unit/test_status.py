import pytest

from orthanc_gnuhealth_plugin.status import Status


def test_initial_status_has_the_contract_fields():
    data = Status().to_json()
    assert {"cursor", "last_change", "pending", "failed", "last_error",
            "gnuhealth_reachable", "last_push", "resync"} <= set(data)
    assert data["gnuhealth_reachable"] is None
    assert data["pending"] is None
    assert data["resync"] == {"running": False, "done": 0, "total": 0}


def test_pending_is_last_change_minus_cursor():
    status = Status()
    status.update(cursor=40, last_change=100)
    assert status.to_json()["pending"] == 60


def test_to_json_is_a_copy():
    status = Status()
    status.set_failed([{"study_uid": "1"}])
    data = status.to_json()
    data["failed"].clear()
    data["resync"]["done"] = 99
    assert status.to_json()["failed"] == [{"study_uid": "1"}]
    assert status.to_json()["resync"]["done"] == 0


def test_unknown_field_is_a_bug():
    with pytest.raises(KeyError):
        Status().update(curser=1)

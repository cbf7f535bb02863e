"""The modality worklist's plain-Python core: orders as DICOM answers, the
query's cheap filter and the cache that keeps C-FIND off GNU Health."""
import datetime
import time
from io import BytesIO

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from orthanc_gnuhealth_plugin.config import ConfigError, parse_settings
from orthanc_gnuhealth_plugin.errors import GnuHealthUnavailable
from orthanc_gnuhealth_plugin.worklist import (
    OrderCache, WorklistSettings, encode, order_dataset, query_keys)


def make_order(**values):
    "An order as tryton_stub_module/worklist.py returns it"
    order = {
        "request": 7, "accession": "IMGREQ0007", "procedure_id": "IMGREQ0007-01-01",
        "procedure": "CT chest", "test_type": "CT", "station_aet": "",
        "study_uid": "1.2.836.0.1.3240043.7.198.42", "date": datetime.datetime(2026, 3, 1, 8, 30),
        "urgent": False, "comment": "", "patient_id": "OQA380WRP",
        "patient_name": ["Müller", "Zoë"], "birth_date": datetime.date(1980, 2, 29),
        "sex": "F", "physician_name": ["House", "Gregory"],
    }
    order.update(values)
    return order


@pytest.fixture
def paris(monkeypatch):
    "Orthanc's host in Paris: Tryton's UTC dates become local times."
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def decoded(dicom):
    return dcmread(BytesIO(dicom))


def test_an_order_becomes_a_worklist_answer(paris):
    answer = decoded(encode(order_dataset(make_order(urgent=True), WorklistSettings())))

    assert answer.SpecificCharacterSet == "ISO_IR 192"
    assert str(answer.PatientName) == "Müller^Zoë"
    assert (answer.PatientID, answer.PatientBirthDate, answer.PatientSex) == (
        "OQA380WRP", "19800229", "F")
    assert answer.AccessionNumber == "IMGREQ0007"
    assert answer.StudyInstanceUID == "1.2.836.0.1.3240043.7.198.42"
    assert (answer.RequestedProcedureID, answer.RequestedProcedureDescription) == (
        "IMGREQ0007-01-01", "CT chest")
    assert answer.RequestedProcedurePriority == "STAT"
    assert str(answer.ReferringPhysicianName) == "House^Gregory"
    step, = answer.ScheduledProcedureStepSequence
    assert (step.Modality, step.ScheduledStationAETitle) == ("CT", "")
    # 08:30 UTC is 09:30 in Paris in March, said with its offset.
    assert (step.ScheduledProcedureStepStartDate, step.ScheduledProcedureStepStartTime) == (
        "20260301", "093000")
    assert answer.TimezoneOffsetFromUTC == "+0100"
    assert answer.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.31"


def test_modalities_and_stations_come_from_the_settings():
    settings = parse_settings({"TrytonPassword": "pw", "Worklist": {
        "Modalities": {"MAMMO": "mg"}, "StationAETitles": {"DX": "XR_ROOM", "CT": "CT1"}}}).worklist

    def step(**values):
        return order_dataset(make_order(**values), settings).ScheduledProcedureStepSequence[0]

    assert (step(test_type="XR").Modality, step(test_type="XR").ScheduledStationAETitle) == (
        "DX", "XR_ROOM")  # XR is GNU Health's, not DICOM's
    assert step(test_type="MAMMO").Modality == "MG"
    assert step(test_type="US").Modality == "US"
    # The imaging test's own AE title (health_imaging_worklist) wins.
    assert step(station_aet="CT_ROOM_2").ScheduledStationAETitle == "CT_ROOM_2"


def test_missing_values_are_empty_not_errors():
    order = make_order(birth_date=None, date=None, study_uid="", sex="",
                       patient_name=["Zoë", ""], physician_name=["", ""])
    answer = decoded(encode(order_dataset(order, WorklistSettings())))
    assert (answer.PatientBirthDate, answer.StudyInstanceUID, answer.PatientSex) == ("", "", "")
    assert str(answer.PatientName) == "Zoë"
    assert answer.ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate == ""
    assert "TimezoneOffsetFromUTC" not in answer


def query(**step_values):
    "A modality's query, with the keys a real worklist query holds."
    dataset = Dataset()
    dataset.PatientName = step_values.pop("PatientName", "")
    dataset.PatientID = step_values.pop("PatientID", "")
    dataset.AccessionNumber = step_values.pop("AccessionNumber", "")
    step = Dataset()
    step.Modality = ""
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = ""
    for key, value in step_values.items():
        setattr(step, key, value)
    dataset.ScheduledProcedureStepSequence = [step]
    return dataset


def test_query_keys_keep_only_single_values():
    keys = query_keys(query(Modality="CT", ScheduledStationAETitle="CT1",
                            ScheduledProcedureStepStartDate="20260301-20260302",
                            PatientID="OQA*", AccessionNumber="A1"))
    assert (keys.modality, keys.station_aet, keys.date_from, keys.date_to) == (
        "CT", "CT1", "20260301", "20260302")
    assert keys.patient_id is None  # a wildcard is Orthanc's to match
    assert keys.accession == "A1"
    assert query_keys(query(ScheduledProcedureStepStartDate="20260301")).date_to == "20260301"
    assert query_keys(query(ScheduledProcedureStepStartDate="-20260301")).date_from is None
    assert query_keys(query(ScheduledProcedureStepStartDate="20260301-")).date_to is None
    assert query_keys(Dataset()).modality is None


@pytest.mark.parametrize("pattern, prefix", [
    ("Müll*", "mull"), ("MULLER^Z*", "muller^z"), ("Müller^Zoë", None), ("*ller", None),
    ("M?ller*", None), ("*", None), ("", None)])
def test_name_prefix_is_as_loose_as_orthanc(pattern, prefix):
    assert query_keys(query(PatientName=pattern)).name_prefix == prefix


@pytest.mark.parametrize("charset, pattern, prefix", [
    (["", "ISO 2022 IR 87"], "山田*", "山田"),
    (["ISO 2022 IR 13", "ISO 2022 IR 87"], "ﾔﾏﾀﾞ^ﾀﾛｳ=山田*", "ヤマタ^タロウ=山田"),
    (["", "ISO 2022 IR 149"], "홍*", "홍"),
    ("ISO_IR 100", "MÜLL*", "mull"),
    ("ISO_IR 192", "müll*", "mull"),
    ("ISO_IR 144", "ИВАН*", "иван"),
    ("GB18030", "王*", "王"),
])
def test_name_prefix_folds_the_same_in_every_charset(charset, pattern, prefix):
    """The query as Orthanc hands it over: DICOM bytes in the modality's
    charset (ISO 2022 escapes included)."""
    dataset = query(PatientName=pattern)
    dataset.SpecificCharacterSet = charset
    raw = as_bytes(dataset)
    if "ISO 2022 IR 87" in charset:
        assert b"\x1b$B" in raw
    assert query_keys(dcmread(BytesIO(raw), force=True)).name_prefix == prefix


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make_cache(orders, clock=None, logs=None, **settings):
    def fetch():
        if isinstance(orders, Exception):
            raise orders
        return list(orders)
    log = (lambda level, line: logs.append((level, line))) if logs is not None else \
        (lambda level, line: None)
    return OrderCache(WorklistSettings(**settings), fetch, log, clock or Clock())


def as_bytes(dataset):
    buffer = BytesIO()
    dataset.save_as(buffer, implicit_vr=True, little_endian=True)
    return buffer.getvalue()


def test_candidates_filter_on_modality_and_date():
    orders = [make_order(request=1, accession="A1"),
              make_order(request=2, accession="A2", test_type="MR"),
              make_order(request=3, accession="A3", date=datetime.datetime(2026, 3, 9, 8))]
    cache = make_cache(orders)
    assert cache.refresh()

    def accessions(dataset):
        return [decoded(d).AccessionNumber for d in cache.candidates(as_bytes(dataset), "CT1")]

    assert accessions(query()) == ["A1", "A2", "A3"]
    assert accessions(query(Modality="CT")) == ["A1", "A3"]
    assert accessions(query(Modality="CT", ScheduledProcedureStepStartDate="20260301")) == ["A1"]
    assert accessions(query(ScheduledProcedureStepStartDate="20260305-")) == ["A3"]
    assert accessions(query(AccessionNumber="A2")) == ["A2"]
    assert accessions(query(PatientName="müller^z*")) == ["A1", "A2", "A3"]
    assert accessions(query(PatientName="Costa*")) == []


def test_only_allowed_calling_aets_get_answers():
    logs = []
    cache = make_cache([make_order()], logs=logs, allowed_calling_aets=("CT1",))
    cache.refresh()
    assert len(cache.candidates(as_bytes(query()), "CT1")) == 1
    assert cache.candidates(as_bytes(query()), "INTRUDER") == []
    assert "refused a query from AE 'INTRUDER'" in logs[-1][1]


def test_gnuhealth_down_answers_from_the_last_cache_and_says_so():
    clock, logs = Clock(), []
    orders = [make_order()]
    cache = make_cache(orders, clock, logs, refresh_interval=5, max_staleness=60)
    cache.refresh()
    cache._fetch = lambda: (_ for _ in ()).throw(GnuHealthUnavailable("trytond is down"))

    assert cache.refresh() is False and cache.refresh() is False
    assert len([line for _, line in logs if "cannot load" in line]) == 1  # once per outage
    clock.now += 30
    assert len(cache.candidates(as_bytes(query()), "CT1")) == 1
    assert not any("answering from orders loaded" in line for _, line in logs)
    clock.now += 31
    for _ in range(3):
        assert len(cache.candidates(as_bytes(query()), "CT1")) == 1
    stale = [line for _, line in logs if "answering from orders loaded 61 s ago" in line]
    assert len(stale) == 1 and "trytond is down" in stale[0]  # once per MaxStaleness
    assert cache.status() == {"orders": 1, "age_seconds": 61.0, "stale": True,
                              "load_seconds": 0.0,
                              "last_error": "GnuHealthUnavailable: trytond is down",
                              "queries": 4}  # the four candidates() calls above

    cache._fetch = lambda: orders
    assert cache.refresh()
    assert "orders loaded again (1 open)" in logs[-1][1]
    assert cache.status()["stale"] is False


def test_before_the_first_load_the_worklist_is_empty_and_logged():
    logs = []
    cache = make_cache(GnuHealthUnavailable("refused"), logs=logs)
    cache.refresh()
    assert cache.candidates(as_bytes(query()), "CT1") == []
    assert "no orders loaded yet" in logs[-1][1]


def test_unchanged_orders_are_not_encoded_again():
    orders = [make_order(request=1), make_order(request=2)]
    cache = make_cache(orders)
    cache.refresh()
    first = cache.candidates(as_bytes(query()), "CT1")
    orders[1] = make_order(request=2, procedure="CT abdomen")
    cache.refresh()
    second = cache.candidates(as_bytes(query()), "CT1")
    assert second[0] is first[0] and second[1] is not first[1]
    assert decoded(second[1]).RequestedProcedureDescription == "CT abdomen"


def test_the_thread_refreshes_until_stopped():
    loads = []
    cache = OrderCache(WorklistSettings(refresh_interval=0.1, max_staleness=1),
                       lambda: loads.append(1) or [], lambda level, line: None)
    cache.start()
    deadline = time.monotonic() + 5
    while len(loads) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    cache.stop(timeout=5)
    assert len(loads) >= 3 and not cache._thread.is_alive()


@pytest.mark.parametrize("worklist, message", [
    ({"RefreshInterval": 0}, "GnuHealth.Worklist.RefreshInterval must be a number of seconds >= 0.1"),
    ({"RefreshInterval": 30, "MaxStaleness": 10},
     "GnuHealth.Worklist.MaxStaleness (10) must be >= RefreshInterval (30)"),
    ({"StationAETitles": {"CT": "A_TITLE_LONGER_THAN_16"}},
     "GnuHealth.Worklist.StationAETitles.CT: 'A_TITLE_LONGER_THAN_16' is not an AE title"),
    ({"AllowedCallingAETs": "CT1"}, "GnuHealth.Worklist.AllowedCallingAETs must be a list"),
    ({"OrderStates": []}, "GnuHealth.Worklist.OrderStates must be a list of at least 1"),
    ({"Modalities": {"XR": "D X"}}, "GnuHealth.Worklist.Modalities.XR must be a DICOM modality"),
    ("yes", '"GnuHealth.Worklist" must be a JSON object'),
])
def test_worklist_settings_errors_name_the_key(worklist, message):
    with pytest.raises(ConfigError) as error:
        parse_settings({"TrytonPassword": "pw", "Worklist": worklist})
    assert message in str(error.value)


def test_worklist_settings():
    warnings = []
    settings = parse_settings({"TrytonPassword": "pw", "Worklist": {
        "Enabled": False, "RefreshInterval": 2, "AllowedCallingAETs": [" CT1 "],
        "OrderStates": ["requested", "draft"], "Refresh": 1}}, warn=warnings.append).worklist
    assert settings == WorklistSettings(enabled=False, refresh_interval=2,
                                        allowed_calling_aets=("CT1",),
                                        order_states=("requested", "draft"))
    assert warnings == ["GnuHealth.Worklist.Refresh is not a known setting and is ignored "
                        "(known: Enabled, RefreshInterval, MaxStaleness, Modalities, "
                        "StationAETitles, AllowedCallingAETs, OrderStates)"]
    assert parse_settings({"TrytonPassword": "pw"}).worklist == WorklistSettings()

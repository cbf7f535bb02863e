import importlib
import sys
import threading

import pytest

from io import BytesIO

from pydicom import dcmread

import fake_orthanc_module
from fakes import FakeOrthanc
from test_worklist import as_bytes, make_order, query

CONFIG = {"Name": "test", "StableAge": 5, "GnuHealth": {
    "TrytonPassword": "pw", "PublicUrl": "https://pacs.example/", "PollInterval": 30,
    "RetryMinDelay": 0.1, "RetryMaxDelay": 0.2, "RpcTimeout": 2}}


@pytest.fixture
def archive():
    return FakeOrthanc()


@pytest.fixture
def load(monkeypatch, archive, gnuhealth):
    """Import the bridge against a fake `orthanc` module and register it."""
    def load(configuration=CONFIG, worklist_taken=False):
        module = fake_orthanc_module.make(configuration, archive, worklist_taken)
        monkeypatch.setitem(sys.modules, "orthanc", module)
        monkeypatch.delitem(sys.modules, "orthanc_gnuhealth_plugin.orthanc_bridge",
                            raising=False)
        bridge = importlib.import_module("orthanc_gnuhealth_plugin.orthanc_bridge")
        monkeypatch.setattr(bridge, "GnuHealthClient", lambda settings, log: gnuhealth)
        return module, bridge.register()
    return load


def wait_for(condition):
    for _ in range(300):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("timed out")


def test_config_error_is_one_log_line_and_nothing_is_registered(load):
    orthanc, plugin = load({"GnuHealth": {"PublicUrl": "x"}})
    assert plugin is None
    assert orthanc.logs == [("error", "GNU Health plugin disabled: GnuHealth.PublicUrl must be "
                                      "an http:// or https:// URL such as "
                                      "\"http://localhost:8042\", not 'x'")]
    assert orthanc.on_change is None and orthanc.routes == {}


def test_missing_password(load):
    orthanc, plugin = load({})
    [(level, line)] = orthanc.logs
    assert level == "error" and "GnuHealth.TrytonPassword is missing" in line


def test_disabled(load):
    orthanc, plugin = load({"GnuHealth": {"Enabled": False}})
    assert plugin is None and orthanc.routes == {}


def test_nothing_touches_the_database_before_orthanc_started(load, archive):
    orthanc, plugin = load()
    assert archive.requests == [] and orthanc.properties == {}
    assert plugin.worker is None
    # Changes before the start (there are none in practice) are ignored:
    # no worker, no thread, no REST call, no property written.
    orthanc.on_change(orthanc.ChangeType.NEW_INSTANCE, orthanc.ResourceType.INSTANCE, "x")
    orthanc.on_change(orthanc.ChangeType.DELETED, orthanc.ResourceType.STUDY, "x")
    assert plugin.worker is None and plugin.thread is None
    assert archive.requests == [] and orthanc.properties == {}


def test_lifecycle_changes_and_routes(load, archive, gnuhealth):
    orthanc, plugin = load()
    ct, rt = orthanc.ChangeType, orthanc.ResourceType
    orthanc.on_change(ct.ORTHANC_STARTED, rt.NONE, "")
    try:
        wait_for(lambda: plugin.worker.status.get("cursor") == 0)
        study = archive.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
        orthanc.on_change(ct.NEW_STUDY, rt.STUDY, study)  # wakes the 30 s poll
        wait_for(lambda: gnuhealth.pushed_uids() == ["1.2.3"])
        wait_for(lambda: orthanc.properties.get(9721) == str(archive.last_seq))
        assert gnuhealth.batches[0]["server"]["public_url"] == "https://pacs.example"

        status = orthanc.call("/gnuhealth/status").json()
        assert status["cursor"] == 4 and status["pending"] == 0
        assert status["receiving"] == 1 and status["audit"]["supported"] is True
        assert plugin.adapter.stable_age() == 5  # from Orthanc's configuration
        assert status["gnuhealth_reachable"] is True
        # Published by the worker after its steps, from the same status.
        wait_for(lambda: orthanc.metrics.get("gnuhealth_pushes_total", 0) >= 1)
        assert orthanc.metrics["gnuhealth_pending_changes"] == 0
        assert orthanc.metrics["gnuhealth_failed_studies"] == 0
        assert orthanc.call("/gnuhealth/status", "POST").status == 405

        viewers = orthanc.call(f"/gnuhealth/studies/{study}/viewers").json()
        assert viewers["explorer"] == f"https://pacs.example/app/explorer.html#study?uuid={study}"
        # The fake Orthanc's plugins have the Web Viewer, no OHIF: no OHIF link.
        assert {name for name, url in viewers.items() if url} == {"explorer", "webviewer"}
        assert viewers["ohif"] is None and viewers["stone"] is None
        unknown = "00000000-00000000-00000000-00000000-00000000"
        assert orthanc.call(f"/gnuhealth/studies/{unknown}/viewers").status == 404
        assert orthanc.call(f"/gnuhealth/studies/{study}/viewers", "POST").status == 405

        answer = orthanc.call(f"/gnuhealth/studies/{study}/sync", "POST").json()
        assert answer["result"] == "pushed"
        assert orthanc.call(f"/gnuhealth/studies/{unknown}/sync", "POST").status == 404
        assert orthanc.call(f"/gnuhealth/studies/{study}/sync").status == 405

        answer = orthanc.call("/gnuhealth/resync", "POST").json()
        assert answer["started"] is True
        wait_for(lambda: orthanc.call("/gnuhealth/status").json()["resync"]["running"] is False)
        assert orthanc.call("/gnuhealth/status").json()["resync"]["done"] == 1
        assert orthanc.call("/gnuhealth/resync").status == 405

        archive.delete_study(study)  # only what Orthanc no longer has is sent
        orthanc.on_change(ct.DELETED, rt.PATIENT, "p")
        orthanc.on_change(ct.DELETED, rt.STUDY, study)
        wait_for(lambda: gnuhealth.deleted() == [{"level": "study", "orthanc_id": study}])
    finally:
        orthanc.on_change(ct.ORTHANC_STOPPED, rt.NONE, "")
    assert not plugin.thread.is_alive()


def test_worklist_answers_from_gnuhealth_orders(load, gnuhealth):
    gnuhealth.orders = [make_order(state="requested", accession="A1"),
                        make_order(state="draft", accession="A2")]
    orthanc, plugin = load({**CONFIG, "GnuHealth": {
        **CONFIG["GnuHealth"], "Worklist": {"RefreshInterval": 0.1}}})
    ct, rt = orthanc.ChangeType, orthanc.ResourceType
    orthanc.on_change(ct.ORTHANC_STARTED, rt.NONE, "")
    try:
        wait_for(lambda: orthanc.call("/gnuhealth/status").json()["worklist"]["orders"] == 1)
        answers = fake_orthanc_module.WorklistAnswers()
        orthanc.on_worklist(answers, fake_orthanc_module.WorklistQuery(as_bytes(query())),
                            "CT1", "ORTHANC")
        assert [dcmread(BytesIO(a)).AccessionNumber for a in answers.answers] == ["A1"]
        # Orthanc's matcher has the last word.
        answers = fake_orthanc_module.WorklistAnswers()
        orthanc.on_worklist(answers, fake_orthanc_module.WorklistQuery(
            as_bytes(query()), is_match=lambda answer: False), "CT1", "ORTHANC")
        assert answers.answers == []
    finally:
        orthanc.on_change(ct.ORTHANC_STOPPED, rt.NONE, "")
    assert not plugin.worklist._thread.is_alive()


def test_worklist_gives_way_to_another_worklist_plugin(load):
    orthanc, plugin = load(worklist_taken=True)
    assert plugin.worklist is None and orthanc.on_worklist is None
    assert ("error", "GNU Health worklist disabled: Orthanc already has a worklist handler "
                     "((1, 'Plugin')); unload the ModalityWorklists plugin "
                     "(libModalityWorklists.so) or set GnuHealth.Worklist.Enabled to "
                     "false") in orthanc.logs
    assert orthanc.call("/gnuhealth/status").json()["worklist"] == {"enabled": False}
    # The sync itself is unaffected.
    assert "/gnuhealth/status" in orthanc.routes and orthanc.on_change is not None


def test_routes_before_start(load):
    orthanc, plugin = load()
    assert orthanc.call("/gnuhealth/status").json() == {
        "running": False, "worklist": {"orders": 0, "age_seconds": None, "stale": True,
                                       "load_seconds": None, "last_error": None,
                                           "queries": 0}}
    assert orthanc.call("/gnuhealth/resync", "POST").status == 503


def test_only_the_bridge_imports_orthanc():
    import pathlib
    package = pathlib.Path(__file__).resolve().parents[2] / "orthanc_gnuhealth_plugin"
    importers = sorted(p.name for p in package.rglob("*.py")
                       if "import orthanc\n" in p.read_text())
    assert importers == ["orthanc_bridge.py"]


def test_sync_route_answers_queued_while_the_worker_is_stuck(load, archive, gnuhealth,
                                                             monkeypatch):
    release = threading.Event()
    blocked = threading.Event()

    def stuck_push(batch):  # a trytond that takes as long as RpcTimeout allows
        blocked.set()
        release.wait(30)
    gnuhealth.push = stuck_push
    study = archive.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    orthanc, plugin = load({**CONFIG, "GnuHealth": {**CONFIG["GnuHealth"], "RpcTimeout": 120}})
    bridge = sys.modules["orthanc_gnuhealth_plugin.orthanc_bridge"]
    # Well under the 30 s after which HTTP clients commonly give up,
    # whatever RpcTimeout is; shortened here so the test is quick.
    assert bridge._SYNC_WAIT <= 10
    monkeypatch.setattr(bridge, "_SYNC_WAIT", 0.2)
    ct, rt = orthanc.ChangeType, orthanc.ResourceType
    orthanc.on_change(ct.ORTHANC_STARTED, rt.NONE, "")
    try:
        assert blocked.wait(5)
        answer = orthanc.call(f"/gnuhealth/studies/{study}/sync", "POST").json()
        assert answer["result"] == "queued"
    finally:
        release.set()
        orthanc.on_change(ct.ORTHANC_STOPPED, rt.NONE, "")


def test_ohif_pages_answer_its_index_when_serve_folders_serves_it(load, archive, tmp_path):
    """OHIF's routes (/ohif/viewer?..., /ohif/ its study list) are not files
    for ServeFolders: the plugin answers them with OHIF's index.html, only
    when ServeFolders' "/ohif" folder holds it."""
    orthanc, plugin = load(CONFIG)
    with pytest.raises(AssertionError, match="no route"):
        orthanc.call("/ohif/viewer")
    index = b"<!doctype html><title>OHIF</title>"
    (tmp_path / "index.html").write_bytes(index)
    orthanc, plugin = load({**CONFIG, "ServeFolders": {"/ohif": str(tmp_path)}})
    for uri in ("/ohif/viewer", "/ohif"):  # Orthanc gives "/ohif/" as "/ohif"
        page = orthanc.call(uri)
        assert (page.status, page.mime, page.answer) == (200, "text/html", index)
    assert orthanc.call("/ohif/viewer", "POST").status == 405
    with pytest.raises(AssertionError, match="no route"):
        orthanc.call("/ohif/app-config.js")  # a file: ServeFolders' own
    archive.plugins.append("serve-folders")
    study = archive.store("1.2.3", "1.2.3.1", "1.2.3.1.1")
    viewers = orthanc.call(f"/gnuhealth/studies/{study}/viewers").json()
    assert viewers["ohif"] == "https://pacs.example/ohif/viewer?StudyInstanceUIDs=1.2.3"


class WakeCounter:
    "Stands for the worker: counts the wakes and the deletions noted."

    def __init__(self):
        self.wakes, self.deleted = 0, []

    def wake(self):
        self.wakes += 1

    def note_deleted(self, resource_type, orthanc_id):
        self.deleted.append((resource_type, orthanc_id))


def test_only_changes_that_make_a_study_dirty_wake_the_worker(load):
    orthanc, plugin = load()
    ct, rt = orthanc.ChangeType, orthanc.ResourceType
    plugin.worker = WakeCounter()
    # What Orthanc signals for each stored instance: none of it is worth a
    # read of /changes (changes.py ignores them).
    for change, resource in ((ct.NEW_INSTANCE, rt.INSTANCE), (ct.NEW_CHILD_INSTANCE, rt.SERIES),
                             (ct.NEW_CHILD_INSTANCE, rt.STUDY), (ct.NEW_PATIENT, rt.PATIENT),
                             (ct.STABLE_PATIENT, rt.PATIENT)):
        orthanc.on_change(change, resource, "x")
    assert plugin.worker.wakes == 0
    for change, resource in ((ct.NEW_STUDY, rt.STUDY), (ct.NEW_SERIES, rt.SERIES),
                             (ct.STABLE_SERIES, rt.SERIES), (ct.STABLE_STUDY, rt.STUDY)):
        orthanc.on_change(change, resource, "x")
    assert plugin.worker.wakes == 4
    orthanc.on_change(ct.DELETED, rt.STUDY, "s")
    assert (plugin.worker.wakes, plugin.worker.deleted) == (4, [("Study", "s")])

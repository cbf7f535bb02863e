"""The only module that talks to Orthanc's `orthanc` module: wiring, no logic.

Orthanc calls `register()` when it loads the plugin. Nothing here reads
the database at import time (global properties cannot be read before
ORTHANC_STARTED); callbacks only set flags, never do I/O.
"""
import json
import threading

import orthanc

from . import config, dicom_text, explorer, mapping, metrics, viewers, worklist
from .gnuhealth_client import STUDY_MODEL, GnuHealthClient, StudyLookup
from .sync import SyncWorker

_RESOURCE_NAMES = {
    orthanc.ResourceType.STUDY: "Study",
    orthanc.ResourceType.SERIES: "Series",
    orthanc.ResourceType.INSTANCE: "Instance",
}
# The changes that wake the worker: those after which a study must be read
# (changes.py). Orthanc signals several changes per stored instance
# (NewInstance, and NewChildInstance for its series, study and patient, not
# in /changes): waking the worker for those would have it re-read /changes
# and publish its metrics hundreds of times a second, competing with the
# C-STORE threads for the CPU.
_WAKING = frozenset({orthanc.ChangeType.NEW_STUDY, orthanc.ChangeType.NEW_SERIES,
                     orthanc.ChangeType.STABLE_SERIES, orthanc.ChangeType.STABLE_STUDY})
_STUDY_ID = r"([0-9a-f]{8}(?:-[0-9a-f]{8}){4})"
# How long POST .../sync waits for the worker before answering "queued":
# well under the time-out of common HTTP clients (30 s), whatever RpcTimeout.
_SYNC_WAIT = 10
# How long Orthanc's shutdown waits for a thread beyond its current RPC.
_STOP_MARGIN = 5


class OrthancAdapter:
    """What sync.py needs from Orthanc, over the in-process REST API and two
    global properties: the cursor, and the state (pending.py)."""

    def __init__(self, cursor_property, state_property):
        self._cursor_property = cursor_property
        self._state_property = state_property

    def get(self, path):
        raw = self.get_raw(path)
        return None if raw is None else json.loads(raw)

    def get_raw(self, path):
        """The body of a GET (bytes: /instances/{id}/content/... is raw), None on 404."""
        try:
            return orthanc.RestApiGet(path)
        except orthanc.OrthancException as error:
            if error.args and error.args[0] == orthanc.ErrorCode.UNKNOWN_RESOURCE:
                return None
            raise

    def store_instance(self, data):
        """POST /instances in-process: Orthanc's answer ({"ID", "ParentStudy",
        "Status": "Success" or "AlreadyStored"...}); raises on a refused file."""
        return json.loads(orthanc.RestApiPost("/instances", data))

    def get_cursor(self):
        value = orthanc.GetGlobalProperty(self._cursor_property, "")
        return int(value) if value.strip() else 0

    def set_cursor(self, cursor):
        orthanc.SetGlobalProperty(self._cursor_property, str(cursor))

    def get_state(self):
        value = orthanc.GetGlobalProperty(self._state_property, "")
        try:
            return json.loads(value) if value.strip() else {}
        except ValueError:
            orthanc.LogWarning(f"GNU Health: global property {self._state_property} "
                               f"is not JSON; starting with an empty state")
            return {}

    def set_state(self, state):
        orthanc.SetGlobalProperty(self._state_property, json.dumps(state))

    def ohif_folder(self):
        """The folder Orthanc's ServeFolders plugin serves at /ohif (OHIF,
        installed by scripts/install.sh), or None."""
        folders = json.loads(orthanc.GetConfiguration()).get("ServeFolders")
        folder = folders.get(viewers.OHIF_PATH) if isinstance(folders, dict) else None
        return folder if isinstance(folder, str) else None

    def stable_age(self):
        """Orthanc's StableAge (seconds without a new instance before a study
        is stable; Orthanc's default 60)."""
        value = json.loads(orthanc.GetConfiguration()).get("StableAge", 60)
        return value if isinstance(value, (int, float)) and value > 0 else 60


def _log(level, line):
    {"info": orthanc.LogInfo, "warning": orthanc.LogWarning,
     "error": orthanc.LogError}[level](line)


class Plugin:
    def __init__(self, settings):
        self.settings = settings
        self.adapter = OrthancAdapter(settings.cursor_property, settings.state_property)
        self.worker = None
        self.thread = None
        self.lookup = StudyLookup(settings)
        self.text = dicom_text.TextReader(self.adapter.get_raw, _log)
        # One client for the sync and the worklist: it keeps a session per thread.
        self.client = GnuHealthClient(settings, _log_info)
        self.metrics = metrics.Metrics()
        self.worklist = None
        if settings.worklist.enabled:
            self.worklist = worklist.OrderCache(
                settings.worklist,
                lambda: self.client.open_imaging_orders(settings.worklist.order_states), _log)

    def on_change(self, change_type, resource_type, resource_id):
        if change_type == orthanc.ChangeType.ORTHANC_STARTED:
            self.start()
        elif change_type == orthanc.ChangeType.ORTHANC_STOPPED:
            self.stop()
        elif self.worker is not None:
            if change_type == orthanc.ChangeType.DELETED:
                name = _RESOURCE_NAMES.get(resource_type)
                if name:
                    self.worker.note_deleted(name, resource_id)
            elif change_type in _WAKING:
                self.worker.wake()

    def start(self):
        self.worker = SyncWorker(self.settings, self.adapter, self.client, _log,
                                 text=self.text, after_step=self.publish_metrics)
        self.thread = threading.Thread(target=self.worker.run, name="gnuhealth-sync",
                                       daemon=True)
        self.thread.start()
        if self.worklist is not None:
            self.worklist.start()

    def stop(self):
        # Each thread finishes its current RPC (bounded by RpcTimeout).
        if self.worklist is not None:
            self.worklist.stop(self.settings.rpc_timeout + _STOP_MARGIN)
        if self.worker is not None:
            self.worker.stop()
            self.thread.join(self.settings.rpc_timeout + _STOP_MARGIN)

    def publish_metrics(self):
        """In the worker thread, after each of its steps (never in a callback)."""
        try:
            worklist_status = self.worklist.status() if self.worklist else {"enabled": False}
            for name, value in self.metrics.values(self.worker.status_now(),
                                                   worklist_status).items():
                orthanc.SetMetricsValue(name, value, orthanc.MetricsType.DEFAULT)
        except Exception as error:  # metrics must never stop the sync
            orthanc.LogWarning(f"GNU Health: cannot publish the metrics: {error!r}")

    def on_worklist(self, answers, query, issuer_aet, called_aet):
        """A modality's C-FIND worklist query: Orthanc's own matcher has the
        last word on the candidates the cache offers."""
        for dicom in self.worklist.candidates(query.WorklistGetDicomQuery(), issuer_aet):
            if query.WorklistIsMatch(dicom):
                answers.WorklistAddAnswer(query, dicom)

    # ---- REST routes ----

    def rest_status(self, output, uri, **request):
        if request["method"] != "GET":
            return output.SendMethodNotAllowed("GET")
        status = self.worker.status_now() if self.worker else {"running": False}
        status["worklist"] = self.worklist.status() if self.worklist else {"enabled": False}
        _answer(output, status)

    def rest_viewers(self, output, uri, **request):
        if request["method"] != "GET":
            return output.SendMethodNotAllowed("GET")
        urls = viewers.study_viewers(self.adapter.get, self.settings.viewer_templates,
                                     self.settings.public_url, request["groups"][0],
                                     self.adapter.ohif_folder())
        if urls is None:
            return output.SendHttpStatusCode(404)
        _answer(output, urls)

    def rest_ohif_page(self, output, uri, **request):
        """OHIF's own pages (/ohif/ its study list, /ohif/viewer?...) are
        routes of its single-page application, not files: ServeFolders
        answers 404 for them, so they get OHIF's index.html, which loads the
        rest from ServeFolders. Registered only when OHIF is installed."""
        if request["method"] != "GET":
            return output.SendMethodNotAllowed("GET")
        index = viewers.ohif_index(self.adapter.ohif_folder())
        if index is None:
            return output.SendHttpStatusCode(404)
        output.AnswerBuffer(index.read_bytes(), "text/html")

    def rest_state(self, output, uri, **request):
        """The study's state in GNU Health, for Orthanc Explorer's study page."""
        if request["method"] != "GET":
            return output.SendMethodNotAllowed("GET")
        orthanc_id = request["groups"][0]
        study = self.adapter.get(f"/studies/{orthanc_id}")
        if study is None:
            return output.SendHttpStatusCode(404)
        record = error = None
        try:
            record = self.lookup.find(orthanc_id)
        except Exception as exception:  # shown to the user, never raised into Orthanc
            error = exception
        failed = self.worker.status.to_json()["failed"] if self.worker else []
        text = mapping.map_study(study, None, None, self.text.study_text(study))
        _answer(output, explorer.describe(orthanc_id, study, failed, record, error,
                                          self.settings, STUDY_MODEL, text))

    def rest_sync(self, output, uri, **request):
        if request["method"] != "POST":
            return output.SendMethodNotAllowed("POST")
        if self.worker is None:
            return output.SendHttpStatusCode(503)
        result = self.worker.request_sync(request["groups"][0], _SYNC_WAIT)
        if result["result"] == "not-found":
            return output.SendHttpStatusCode(404)
        _answer(output, result)

    def rest_resync(self, output, uri, **request):
        if request["method"] != "POST":
            return output.SendMethodNotAllowed("POST")
        if self.worker is None:
            return output.SendHttpStatusCode(503)
        started = self.worker.start_resync()
        _answer(output, {"started": started, "resync": self.worker.status.get("resync")})


def _log_info(line):
    orthanc.LogInfo(line)


def _answer(output, data):
    output.AnswerBuffer(json.dumps(data, indent=2), "application/json")


def _configuration():
    return json.loads(orthanc.GetConfiguration()).get(config.SECTION)


def _register_worklist(plugin):
    if plugin.worklist is None:
        return
    try:
        orthanc.RegisterWorklistCallback(plugin.on_worklist)
    except orthanc.OrthancException as error:
        plugin.worklist = None
        orthanc.LogError(
            f"GNU Health worklist disabled: Orthanc already has a worklist handler "
            f"({error}); unload the ModalityWorklists plugin (libModalityWorklists.so) "
            f"or set GnuHealth.Worklist.Enabled to false")


def register():
    try:
        settings = config.parse_settings(_configuration(), warn=orthanc.LogWarning)
    except config.ConfigError as error:
        orthanc.LogError(f"GNU Health plugin disabled: {error}")
        return None
    if not settings.enabled:
        orthanc.LogWarning("GNU Health plugin disabled: GnuHealth.Enabled is false")
        return None
    plugin = Plugin(settings)
    orthanc.RegisterOnChangeCallback(plugin.on_change)
    orthanc.RegisterRestCallback("/gnuhealth/status", plugin.rest_status)
    orthanc.RegisterRestCallback(f"/gnuhealth/studies/{_STUDY_ID}/viewers", plugin.rest_viewers)
    orthanc.RegisterRestCallback(f"/gnuhealth/studies/{_STUDY_ID}/sync", plugin.rest_sync)
    orthanc.RegisterRestCallback("/gnuhealth/resync", plugin.rest_resync)
    orthanc.RegisterRestCallback(f"/gnuhealth/studies/{_STUDY_ID}/state", plugin.rest_state)
    if viewers.ohif_index(plugin.adapter.ohif_folder()):
        # Before ServeFolders' own route for /ohif/...: the plugin must come
        # first in Orthanc's "Plugins" list (orthanc.json.example).
        # Orthanc drops a trailing "/": "/ohif/" (OHIF's study list) is "/ohif".
        orthanc.RegisterRestCallback(f"{viewers.OHIF_PATH}(?:/viewer)?", plugin.rest_ohif_page)
    orthanc.ExtendOrthancExplorer(explorer.javascript())
    _register_worklist(plugin)
    orthanc.LogWarning(f"GNU Health plugin: pushing studies to {settings.rpc_url} "
                       f"as server {settings.server_label!r}")
    return plugin

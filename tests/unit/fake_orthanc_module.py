"""A stand-in for orthanc-python 4.0's `orthanc` module.

Like the real one, ChangeType / ResourceType members are plain ints, a
second RegisterOnChangeCallback raises, and RestApiGet returns bytes and
raises OrthancException(17, ...) for an unknown resource.
"""
import json
import types


class ChangeType:
    COMPLETED_SERIES = 0
    DELETED = 1
    NEW_CHILD_INSTANCE = 2
    NEW_INSTANCE = 3
    NEW_PATIENT = 4
    NEW_SERIES = 5
    NEW_STUDY = 6
    STABLE_PATIENT = 7
    STABLE_SERIES = 8
    STABLE_STUDY = 9
    ORTHANC_STARTED = 10
    ORTHANC_STOPPED = 11


class ResourceType:
    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3
    NONE = 4


class ErrorCode:
    PLUGIN = 1
    UNKNOWN_RESOURCE = 17
    INTERNAL_ERROR = -1


class MetricsType:
    DEFAULT = 0
    TIMER = 1


class OrthancException(Exception):
    pass


class Output:
    """The `output` object given to REST callbacks."""

    def __init__(self):
        self.answer = None
        self.mime = None
        self.status = None
        self.allowed = None

    def AnswerBuffer(self, data, mime):
        self.answer, self.mime, self.status = data, mime, 200

    def SendHttpStatusCode(self, code):
        self.status = code

    def SendMethodNotAllowed(self, allowed):
        self.status, self.allowed = 405, allowed

    def json(self):
        assert self.status == 200 and self.mime == "application/json"
        return json.loads(self.answer)


class WorklistQuery:
    """The `query` of a worklist callback; `is_match` stands in for
    Orthanc's DICOM matcher."""

    def __init__(self, dicom, is_match=lambda answer: True):
        self.dicom, self.is_match = dicom, is_match

    def WorklistGetDicomQuery(self):
        return self.dicom

    def WorklistIsMatch(self, answer):
        return self.is_match(answer)


class WorklistAnswers:
    def __init__(self):
        self.answers = []

    def WorklistAddAnswer(self, query, answer):
        assert isinstance(query, WorklistQuery) and isinstance(answer, bytes)
        self.answers.append(answer)


def make(configuration, archive, worklist_taken=False):
    """A fresh fake module; `archive` is a fakes.FakeOrthanc serving REST."""
    module = types.ModuleType("orthanc")
    module.ChangeType, module.ResourceType, module.ErrorCode = ChangeType, ResourceType, ErrorCode
    module.OrthancException = OrthancException
    module.MetricsType = MetricsType
    module.metrics = {}
    module.logs = []
    module.routes = {}
    module.on_change = None
    module.on_worklist = None
    module.properties = {}

    def register_on_change(callback):
        if module.on_change is not None:
            raise OrthancException(ErrorCode.INTERNAL_ERROR, "already registered")
        module.on_change = callback

    def rest_api_get(path):
        answer = archive.get(path)
        if answer is None:
            raise OrthancException(ErrorCode.UNKNOWN_RESOURCE, "Unknown resource")
        return json.dumps(answer).encode()

    def call(uri, method="GET", body=b""):
        import re
        for pattern, callback in module.routes.items():
            match = re.fullmatch(pattern, uri)
            if match:
                output = Output()
                callback(output, uri, method=method, groups=match.groups(), body=body,
                         headers={}, get={})
                return output
        raise AssertionError(f"no route for {uri}")

    def register_worklist(callback):
        # Orthanc takes one worklist handler (e.g. libModalityWorklists).
        if worklist_taken or module.on_worklist is not None:
            raise OrthancException(ErrorCode.PLUGIN, "Plugin")
        module.on_worklist = callback

    module.RegisterOnChangeCallback = register_on_change
    module.RegisterWorklistCallback = register_worklist
    module.RegisterRestCallback = lambda pattern, callback: module.routes.__setitem__(
        pattern, callback)
    module.GetConfiguration = lambda: json.dumps(configuration)
    module.RestApiGet = rest_api_get
    module.GetGlobalProperty = lambda number, default: module.properties.get(number, default)
    module.SetGlobalProperty = lambda number, value: module.properties.__setitem__(number, value)
    module.LogInfo = lambda line: module.logs.append(("info", line))
    module.LogWarning = lambda line: module.logs.append(("warning", line))
    module.LogError = lambda line: module.logs.append(("error", line))
    module.call = call

    def set_metrics_value(name, value, kind):
        assert isinstance(name, str) and isinstance(value, float) and kind in (0, 1)
        module.metrics[name] = value
    module.SetMetricsValue = set_metrics_value
    module.explorer_javascript = []
    module.ExtendOrthancExplorer = module.explorer_javascript.append
    return module

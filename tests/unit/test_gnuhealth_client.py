"""The proteus client against a small XML-RPC server that answers like
trytond 7.0 (session login, 401 on a bad session, Faults for errors)."""
import base64
import contextlib
import socket
import threading
import time
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orthanc_gnuhealth_plugin.errors import NotSupported
from orthanc_gnuhealth_plugin.gnuhealth_client import (
    GnuHealthClient, GnuHealthUnavailable, StudyLookup, StudyRejected, classify)

import stack
from fakes import settings


class FakeTrytond:
    def __init__(self):
        self.sessions = set()
        self.logins = 0
        self.batches = []
        self.paths = []
        self.fault = None
        self.hang = False
        self.password = "secret"
        self.release = threading.Event()
        self.summaries = []
        # trytond answers 403 to a method that is not in the model's __rpc__.
        self.methods = {"model.gnuhealth.radiology.study.audit_summary"}
        test = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                data = self.rfile.read(int(self.headers["Content-Length"]))
                params, method = xmlrpc.client.loads(data, use_builtin_types=True)
                test.paths.append(self.path)
                if method == "common.db.login" and params[1].get("password") != test.password:
                    return self._send(401, b"")  # trytond's answer to a wrong password
                if method != "common.db.login" and not test.session_ok(self.headers):
                    # What trytond answers to an unknown or expired session.
                    return self._send(401, b"")
                if method.endswith(".audit_summary") and method not in test.methods:
                    return self._send(403, b"")
                try:
                    body = xmlrpc.client.dumps((test.dispatch(method, params),),
                                               methodresponse=True, allow_none=True)
                except xmlrpc.client.Fault as fault:
                    body = xmlrpc.client.dumps(fault, allow_none=True)
                self._send(200, body.encode())

            def _send(self, code, body):
                self.send_response(code)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                         daemon=True).start()

    def session_ok(self, headers):
        auth = headers.get("Authorization", "")
        return auth.startswith("Session ") and base64.b64decode(
            auth.split()[1]).decode() in self.sessions

    def dispatch(self, method, params):
        if method == "common.db.login":
            username, parameters = params
            self.logins += 1
            self.sessions.add(f"{username}:1:session{self.logins}")
            return [1, f"session{self.logins}"]
        if method == "model.res.user.get_preferences":
            return {"language": "en", "company": 1}
        if method == "model.gnuhealth.radiology.study.push_from_pacs":
            if self.hang:
                self.release.wait(60)
            if self.fault:
                raise self.fault
            batch, context = params
            assert context == {"language": "en", "company": 1}
            self.batches.append(batch)
            return {"studies": len(batch["studies"])}
        if method == "model.gnuhealth.radiology.study.audit_summary":
            label, ids, context = params
            self.summaries.append((label, ids))
            return {"a": {"series": 1, "instances": 2, "last_update": "20261201T093000",
                          "reception": "complete", "pacs_state": "available"}}
        if method == "model.gnuhealth.imaging.test.request.worklist_orders":
            if self.fault:
                raise self.fault
            states, context = params
            return [{"accession": "A1", "states": states}]
        raise xmlrpc.client.Fault(255, f"unknown method {method}")

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def trytond():
    server = FakeTrytond()
    yield server
    server.close()


def test_pushes_with_one_login_and_the_session_header(trytond):
    client = GnuHealthClient(settings(tryton_url=trytond.url, tryton_database="health"))
    batch = {"server": {"label": "orthanc"}, "studies": [{"study_uid": "1.2"}], "deleted": []}
    assert client.push(batch) == {"studies": 1}
    client.push(batch)
    assert trytond.logins == 1
    assert trytond.batches == [batch, batch]
    assert set(trytond.paths) == {"/health/"}


def test_each_thread_has_its_own_session(trytond):
    client = GnuHealthClient(settings(tryton_url=trytond.url))
    client.push({"studies": [], "deleted": []})
    thread = threading.Thread(target=client.push, args=({"studies": [], "deleted": []},))
    thread.start()
    thread.join(5)
    assert trytond.logins == 2


def test_expired_session_logs_in_again_once(trytond):
    client = GnuHealthClient(settings(tryton_url=trytond.url))
    client.push({"studies": [], "deleted": []})
    trytond.sessions.clear()  # trytond restarted / session timed out
    client.push({"studies": [], "deleted": []})
    assert trytond.logins == 2
    assert len(trytond.batches) == 2


def test_wrong_password_is_unavailable_and_names_the_keys(trytond):
    trytond.password = "other"
    client = GnuHealthClient(settings(tryton_url=trytond.url))
    with pytest.raises(GnuHealthUnavailable) as caught:
        client.push({"studies": [], "deleted": []})
    assert "GnuHealth.TrytonPassword" in str(caught.value)


def test_user_error_is_a_rejection_with_the_server_message(trytond):
    trytond.fault = xmlrpc.client.Fault(1, "Study 1.2 has no patient")
    client = GnuHealthClient(settings(tryton_url=trytond.url))
    with pytest.raises(StudyRejected, match="Study 1.2 has no patient"):
        client.push({"studies": [], "deleted": []})


def test_imaging_orders(trytond):
    client = GnuHealthClient(settings(tryton_url=trytond.url))
    assert client.open_imaging_orders(("requested",)) == [
        {"accession": "A1", "states": ["requested"]}]


def test_imaging_orders_without_health_imaging_name_the_fix(trytond):
    # What trytond answers when its pool has no such model.
    trytond.fault = xmlrpc.client.Fault(255, "'gnuhealth.imaging.test.request'")
    client = GnuHealthClient(settings(tryton_url=trytond.url, tryton_database="health"))
    with pytest.raises(NotSupported, match="activate health_imaging and an up-to-date "
                                           "health_radiology in database health"):
        client.open_imaging_orders(["requested"])


def test_concurrency_fault_is_transient(trytond):
    trytond.fault = xmlrpc.client.Fault(4, "try again")
    client = GnuHealthClient(settings(tryton_url=trytond.url))
    with pytest.raises(GnuHealthUnavailable):
        client.push({"studies": [], "deleted": []})


def test_unreachable_server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = GnuHealthClient(settings(tryton_url=f"http://127.0.0.1:{port}/"))
    with pytest.raises(GnuHealthUnavailable, match="unreachable|refused"):
        client.push({"studies": [], "deleted": []})


@pytest.fixture
def silent_server():
    """A server that accepts connections and never answers (a hung trytond)."""
    with stack.silent_server() as server:
        yield server


def test_a_server_that_never_answers_the_login_times_out(silent_server):
    url, accepted = silent_server
    client = GnuHealthClient(settings(tryton_url=url, rpc_timeout=1))
    started = time.monotonic()
    with pytest.raises(GnuHealthUnavailable, match="unreachable: timed out"):
        client.push({"studies": [], "deleted": []})
    assert 1 <= time.monotonic() - started < 20
    assert len(accepted) == 1


def test_a_server_that_stops_answering_after_login_times_out(trytond):
    client = GnuHealthClient(settings(tryton_url=trytond.url, rpc_timeout=1))
    client.push({"studies": [], "deleted": []})  # log in first
    trytond.hang = True  # answers only when the test ends
    started = time.monotonic()
    with pytest.raises(GnuHealthUnavailable, match="unreachable: timed out"):
        client.push({"studies": [], "deleted": []})
    assert 1 <= time.monotonic() - started < 20


def test_audit_summary(trytond):
    client = GnuHealthClient(settings(tryton_url=trytond.url))
    assert client.audit_summary("orthanc", ["a", "b"]) == {
        "a": {"series": 1, "instances": 2, "last_update": "20261201T093000",
              "reception": "complete", "pacs_state": "available"}}
    assert trytond.summaries == [("orthanc", ["a", "b"])]


def test_audit_summary_missing_is_not_supported(trytond):
    trytond.methods.discard("model.gnuhealth.radiology.study.audit_summary")
    client = GnuHealthClient(settings(tryton_url=trytond.url))
    with pytest.raises(NotSupported):
        client.audit_summary("orthanc", ["a"])


def test_classify():
    s = settings()
    assert isinstance(classify(xmlrpc.client.ProtocolError("u", 503, "busy", {}), s),
                      GnuHealthUnavailable)
    assert "GnuHealth.TrytonDatabase" in str(
        classify(xmlrpc.client.ProtocolError("u", 404, "nf", {}), s))
    assert isinstance(classify(xmlrpc.client.Fault(255, "bug"), s), StudyRejected)
    assert classify(KeyError("x"), s) is None
    # What trytond 7.0 answers when health_radiology is not activated.
    missing = classify(xmlrpc.client.Fault(255, "'gnuhealth.radiology.study'"), s)
    assert isinstance(missing, GnuHealthUnavailable)
    assert "activate the module health_radiology" in str(missing)


# ---- the study look-up of Orthanc Explorer's panel ----

STUDY_ID = "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d"
LOOKUP_SETTINGS = settings(tryton_url="http://his:8000/", tryton_database="health")
RECORD = {"id": 7, "reception": "complete", "pacs_state": "available",
          "link_state": "linked", "link_note": "by PUID", "last_sync": None,
          "party.": {"id": 3, "rec_name": "García, Ana"},
          "patient.": {"id": 4, "rec_name": "García, Ana"}}


class FakeServer:
    def __init__(self, answers):
        self.answers, self.calls = list(answers), []

    def __getattr__(self, name):
        def call(*args):
            self.calls.append((name, args))
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return call


def lookup_with(server):
    class Config:
        context = {}
    Config.server = server

    @contextlib.contextmanager
    def login(url, **kwargs):
        yield Config
    return StudyLookup(LOOKUP_SETTINGS, login=login)


def test_lookup_asks_for_less_when_fields_are_not_readable():
    server = FakeServer([xmlrpc.client.Fault(1, 'You are not allowed to access "Request"'),
                         [RECORD], [RECORD]])
    lookup = lookup_with(server)
    assert lookup.find(STUDY_ID) == RECORD
    assert lookup.find(STUDY_ID) == RECORD
    fields = [args[4] for _, args in server.calls]
    # The order's professional goes first (the sync account may not read
    # health professionals), the rest of the order stays.
    assert "imaging_request.doctor.rec_name" in fields[0]
    assert "imaging_request.doctor.rec_name" not in fields[1] and fields[1] == fields[2]
    assert {"imaging_request.request", "imaging_request.requested_test.rec_name",
            "imaging_request.state"} <= set(fields[1])
    assert server.calls[0][1][0] == [("server.label", "=", "orthanc"),
                                     ("orthanc_id", "=", STUDY_ID)]


def test_lookup_reports_unreachable():
    lookup = lookup_with(FakeServer([ConnectionRefusedError("refused")]))
    with pytest.raises(GnuHealthUnavailable):
        lookup.find(STUDY_ID)

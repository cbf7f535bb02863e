"""Every call to GNU Health over XML-RPC (proteus): the pushes, the lists
for the audit and the worklist, and the look-up of one study.

proteus keeps its configuration per thread, so each thread logs in once
with a session (a password on every call costs a ~270 ms scrypt check on
the server) and keeps it until the server says it expired. Every socket,
the login's included, times out after RpcTimeout.
"""
import http.client
import re
import socket
import ssl
import threading
import xmlrpc.client

from proteus import config as proteus_config

from .config import tls_context
from .errors import GnuHealthUnavailable, NotSupported, StudyRejected

STUDY_MODEL = "gnuhealth.radiology.study"
RPC_METHOD = f"model.{STUDY_MODEL}.push_from_pacs"
WORKLIST_METHOD = "model.gnuhealth.imaging.test.request.worklist_orders"
UPLOAD_MODEL = "gnuhealth.radiology.upload"
# What Orthanc Explorer's study panel shows (explorer.describe). With GNU
# Health's health_imaging, the study also links to its patient and order
# (code, test, state, requesting professional: the order's rec_name is
# mostly empty); the sync account may not read them all (the professional
# is the first to go): then it asks for less.
_LOOKUP_FIELDS = ["id", "reception", "pacs_state", "link_state", "link_note",
                  "last_sync", "party.rec_name"]
_ORDER_FIELDS = ["patient.rec_name", "imaging_request.request",
                 "imaging_request.requested_test.rec_name", "imaging_request.state"]
_LOOKUP_FIELD_SETS = [_LOOKUP_FIELDS + _ORDER_FIELDS + ["imaging_request.doctor.rec_name"],
                      _LOOKUP_FIELDS + _ORDER_FIELDS,
                      _LOOKUP_FIELDS + ["patient.rec_name"], _LOOKUP_FIELDS]

# trytond's Fault codes (trytond.exceptions): UserError 1, UserWarning 2,
# LoginException 3, ConcurrencyException 4, any other server error 255.
# These say "not now" rather than "this data is wrong".
_TRANSIENT_FAULTS = {3: "LoginException", 4: "ConcurrencyException"}
# Code 255 is any other exception, its text being str(exception): these
# are trytond's database or host failing, not the data (PostgreSQL down or
# restarting, SQLite locked, a pool exhausted, a serialization conflict).
_TRANSIENT_255 = re.compile(
    r"could not connect|connection (?:refused|reset|closed|timed out)|"
    r"server closed the connection|terminating connection|"
    r"the database system is (?:starting up|shutting down|in recovery)|"
    r"database is locked|database (?:is )?unavailable|too many (?:connections|clients)|"
    r"could not serialize|deadlock detected|OperationalError|InterfaceError|"
    r"PoolError|connection pool|timeout expired|timed out|Broken pipe|"
    r"No space left on device|read-only|"
    # the module's code is newer than the database: run trytond-admin -u
    r"no such (?:column|table)|(?:column|relation) \S+ does not exist",
    re.IGNORECASE)


class SessionExpired(Exception):
    """trytond answered 401/403: the session timed out or trytond restarted."""


def _timeout_transport(settings, session_headers):
    """An xmlrpc transport whose sockets time out, so a hung trytond cannot
    block the worker (and Orthanc's shutdown) forever.

    xmlrpc.client ignores ServerProxy's `headers` when a transport is given,
    so the transport itself sends `session_headers`: the list into which
    set_xmlrpc_session appends the session's Authorization header.
    """
    url, timeout = settings.rpc_url, settings.rpc_timeout
    https = url.startswith("https:")
    base = xmlrpc.client.SafeTransport if https else xmlrpc.client.Transport
    # Verifying trytond's certificate, against TrytonCaBundle if set.
    options = {"context": tls_context(settings)} if https else {}

    class TimeoutTransport(base):
        def make_connection(self, host):
            connection = super().make_connection(host)
            connection.timeout = timeout
            return connection

        def send_headers(self, connection, headers):
            super().send_headers(connection, list(headers) + list(session_headers))

    return TimeoutTransport(use_builtin_types=True, **options)


def classify(error, settings):
    """Translate an RPC exception into the worker's two outcomes."""
    where = f"GNU Health at {settings.tryton_url} (database {settings.tryton_database})"
    if isinstance(error, xmlrpc.client.Fault):
        if error.faultCode == 255 and error.faultString.strip("'\"") == STUDY_MODEL:
            # trytond's pool has no such model: a set-up problem, not bad data.
            return GnuHealthUnavailable(
                f"{where} has no model {STUDY_MODEL}: activate the module "
                f"health_radiology in that database (or fix GnuHealth.TrytonDatabase)")
        if error.faultCode in _TRANSIENT_FAULTS:
            return GnuHealthUnavailable(f"{where} answered "
                                        f"{_TRANSIENT_FAULTS[error.faultCode]}: {error.faultString}")
        if error.faultCode == 255 and _TRANSIENT_255.search(str(error.faultString)):
            return GnuHealthUnavailable(f"{where} has a server or database problem "
                                        f"(not the study's fault): {error.faultString}")
        return StudyRejected(error.faultString)
    if isinstance(error, xmlrpc.client.ProtocolError):
        if error.errcode in (401, 403):
            return SessionExpired()
        if error.errcode == 404:
            return GnuHealthUnavailable(
                f"{where} answered 404: check GnuHealth.TrytonUrl and "
                f"GnuHealth.TrytonDatabase")
        return GnuHealthUnavailable(f"{where} answered HTTP {error.errcode} {error.errmsg}")
    if isinstance(error, ssl.SSLCertVerificationError):
        return GnuHealthUnavailable(
            f"{where} refused: its TLS certificate is not trusted ({error.verify_message}); "
            f"set GnuHealth.TrytonCaBundle to the PEM file of the CA that signed it")
    if isinstance(error, (OSError, socket.timeout, http.client.HTTPException,
                          xmlrpc.client.ResponseError)):
        return GnuHealthUnavailable(f"{where} is unreachable: {error}")
    return None


def open_session(settings, login_function):
    """Log in once with proteus and return its configuration; raises
    GnuHealthUnavailable naming the settings to check."""
    headers = []
    session = login_function(
        settings.rpc_url, username=settings.tryton_user,
        password=settings.tryton_password, headers=headers,
        transport=_timeout_transport(settings, headers))
    try:
        # set_xmlrpc_session is a generator context manager: entering it
        # logs in; the caller keeps it for as long as it is valid.
        return session.__enter__()
    except Exception as error:
        refused = isinstance(error, xmlrpc.client.Fault) or (
            isinstance(error, xmlrpc.client.ProtocolError) and error.errcode in (401, 403))
        translated = None if refused else classify(error, settings)
        if isinstance(translated, GnuHealthUnavailable):
            raise translated from error
        raise GnuHealthUnavailable(
            f"login to GNU Health at {settings.rpc_url} as {settings.tryton_user!r} "
            f"refused ({error}): check GnuHealth.TrytonUser and "
            f"GnuHealth.TrytonPassword") from error


class GnuHealthClient:
    def __init__(self, settings, log=lambda line: None,
                 login=proteus_config.set_xmlrpc_session):
        self._settings = settings
        self._log = log
        self._login_function = login
        self._local = threading.local()

    def push(self, batch):
        """One RPC call; returns GNU Health's answer.

        Raises GnuHealthUnavailable or StudyRejected.
        """
        try:
            return self._call(batch)
        except SessionExpired:
            self._log("GNU Health session expired; logging in again")
            self._forget_session()
            try:
                return self._call(batch)
            except SessionExpired:
                raise GnuHealthUnavailable(
                    f"GNU Health refuses the session of {self._settings.tryton_user!r} "
                    f"right after login: give that user access to "
                    f"gnuhealth.radiology.study (push_from_pacs)") from None

    def available_studies(self, label, after, limit):
        """Orthanc ids of the studies of server `label` that GNU Health shows
        as available in the PACS, ordered, greater than `after`, at most
        `limit` (for the audit). Uses the standard search_read, which
        the sync group may read; raises NotSupported when it may not."""
        domain = [("server.label", "=", label), ("pacs_state", "=", "available"),
                  ("orthanc_id", "!=", None)]
        if after:
            domain.append(("orthanc_id", ">", after))
        try:
            rows = self._with_session(
                f"model.{STUDY_MODEL}.search_read", domain, 0, limit,
                [("orthanc_id", "ASC")], ["orthanc_id"])
        except StudyRejected as error:
            raise NotSupported(str(error)) from None
        return [row["orthanc_id"] for row in rows]

    def audit_summary(self, label, orthanc_ids):
        """GNU Health's side of a page of the audit: {orthanc_id: {"series",
        "instances", "last_update", "reception", "pacs_state"}} for the
        studies of server `label` it has. Raises NotSupported when GNU
        Health has no such RPC (health_radiology older than the plugin)."""
        try:
            return self._with_session(f"model.{STUDY_MODEL}.audit_summary",
                                      label, list(orthanc_ids))
        except StudyRejected as error:
            raise NotSupported(str(error)) from None

    def open_imaging_orders(self, states):
        """GNU Health's imaging orders in `states` still to be performed
        (see tryton_stub_module/worklist.py), for the modality worklist.
        Raises GnuHealthUnavailable, or NotSupported naming the fix."""
        return self._with_module(WORKLIST_METHOD, "list imaging orders", list(states))

    def claim_uploads(self, node, limit):
        """Up to `limit` pending uploads, claimed for `node` so that no other
        node imports them (tryton_stub_module/upload.py). Raises
        GnuHealthUnavailable, or NotSupported naming the fix."""
        return self._with_module(f"model.{UPLOAD_MODEL}.claim_uploads",
                                 "hand out uploads", node, limit)

    def _with_module(self, method, what, *args):
        """A call that needs health_imaging and health_radiology activated and
        the sync group: a refusal is NotSupported, naming the fix."""
        try:
            return self._with_session(method, *args)
        except StudyRejected as error:
            raise NotSupported(
                f"GNU Health cannot {what} ({error}): activate health_imaging "
                f"and an up-to-date health_radiology in database "
                f"{self._settings.tryton_database}, and put {self._settings.tryton_user!r} "
                f"in the radiology sync group") from None

    def finish_upload(self, upload_id, result):
        """Report what the import of a claimed upload came to."""
        return self._with_session(f"model.{UPLOAD_MODEL}.finish_upload", upload_id, result)

    def _with_session(self, method, *args):
        try:
            return self._call(*args, method=method)
        except SessionExpired:
            self._forget_session()
            try:
                return self._call(*args, method=method)
            except SessionExpired:
                raise NotSupported(f"{method} refused to {self._settings.tryton_user!r}") \
                    from None

    def _call(self, *args, method=RPC_METHOD):
        config = self._session()
        try:
            return getattr(config.server, method)(*args, config.context)
        except Exception as error:
            translated = classify(error, self._settings)
            if translated is None:
                raise
            raise translated from error

    def _session(self):
        config = getattr(self._local, "config", None)
        if config is None:
            config = self._local.config = self._login()
        return config

    def _login(self):
        return open_session(self._settings, self._login_function)

    def _forget_session(self):
        self._local.config = None


class StudyLookup(GnuHealthClient):
    """Finds one study in GNU Health with the sync account, for Orthanc
    Explorer's panel.

    Called from Orthanc's HTTP threads: one session shared under a lock
    (a session per thread would log in once per HTTP thread).
    """

    def __init__(self, settings, login=proteus_config.set_xmlrpc_session):
        super().__init__(settings, login=login)
        self._lock = threading.Lock()
        self._config = None
        self._fields = 0  # index in _LOOKUP_FIELD_SETS

    def find(self, orthanc_id):
        """The study's record (dict) or None; raises GnuHealthUnavailable."""
        domain = [("server.label", "=", self._settings.server_label),
                  ("orthanc_id", "=", orthanc_id)]
        with self._lock:
            while True:
                try:
                    rows = self._with_session(
                        f"model.{STUDY_MODEL}.search_read", domain, 0, 1, None,
                        _LOOKUP_FIELD_SETS[self._fields])
                except StudyRejected:
                    if self._fields + 1 < len(_LOOKUP_FIELD_SETS):
                        # Plain Tryton (no patients nor orders), or no access.
                        self._fields += 1
                        continue
                    raise
                except NotSupported as error:
                    raise GnuHealthUnavailable(
                        f"GNU Health refuses the session of "
                        f"{self._settings.tryton_user!r} ({error})") from None
                return rows[0] if rows else None

    def _session(self):
        if self._config is None:
            self._config = self._login()
        return self._config

    def _forget_session(self):
        self._config = None

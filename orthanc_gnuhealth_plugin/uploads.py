"""The worker's part in outside images uploaded in GNU Health.

Every Uploads.Interval seconds, and only while the change log is drained,
the worker claims one pending upload (GNU Health hands it to this node
only), imports it (upload.py) and reports the result. An upload it had
claimed before a restart is given to it again, and imported again without
duplicates (Orthanc keys instances on their UIDs). The usual sync then
pushes the stored study, which links to the patient by its PUID, and to
the order by its accession.
"""
import socket
import tempfile
import traceback
from pathlib import Path

from . import upload
from .errors import NotSupported

# Uploads claimed per call: one at a time, so a big CD never holds back
# the studies the modalities send for longer than its own import.
CLAIM_LIMIT = 1


def node_name(label, system):
    """This node among those sharing ServerLabel: its host and HTTP port."""
    return f"{label}@{socket.gethostname()}:{(system or {}).get('HttpPort', '')}"


class Uploads:
    """`step()` imports one upload; the worker calls it when `due()`.

    `orthanc`: get(path), store_instance(bytes) -> the answer of POST
    /instances; `gnuhealth`: claim_uploads(node, limit),
    finish_upload(id, result).
    """

    def __init__(self, settings, orthanc, gnuhealth, status, log, clock):
        self._settings = settings.uploads
        self._label = settings.server_label
        self._orthanc = orthanc
        self._gnuhealth = gnuhealth
        self._status = status
        self._log = log
        self._clock = clock
        self._enabled = self._settings.interval > 0
        self._limits = upload.Limits(self._settings.max_files,
                                     self._settings.max_total_megabytes << 20)
        self._next = 0.0
        self._node = None

    def due(self):
        return self._enabled and self._clock() >= self._next

    def next_time(self):
        return self._next if self._enabled else None

    def step(self):
        """Claim and import one upload; True when there was one (there may
        be more: look again at once). Raises GnuHealthUnavailable."""
        if self._node is None:
            self._node = node_name(self._label, self._orthanc.get("/system"))
        self._next = self._clock() + self._settings.interval
        try:
            claims = self._gnuhealth.claim_uploads(self._node, CLAIM_LIMIT)
        except NotSupported as error:
            self._enabled = False
            self._log("warning", f"GNU Health: uploads are not imported on this node: "
                                 f"{error}")
            return False
        for claim in claims:
            result = self._import(claim)
            self._gnuhealth.finish_upload(claim["id"], result)
            self._status.update(last_upload={"id": claim["id"], **{
                k: result[k] for k in ("state", "message", "stored", "skipped", "failed")}})
            self._log("info" if result["state"] == "done" else "warning",
                      f"GNU Health: upload {claim['id']} ({claim['filename']}) "
                      f"{result['state']}: {result['message']}")
        if claims:
            self._next = self._clock()  # more may be waiting
        return bool(claims)

    def _import(self, claim):
        self._log("info", f"GNU Health: importing upload {claim['id']} "
                          f"({claim['filename']}, {len(claim['data'])} bytes) for patient "
                          f"{claim['patient_id']} as node {self._node}")
        try:
            with tempfile.TemporaryDirectory(prefix="gnuhealth-upload-") as folder:
                return upload.import_upload(claim, Path(folder), self._orthanc.store_instance,
                                            self._limits, self._settings.reconcile)
        except Exception as error:  # a bug must not retry the same upload forever
            self._log("error", f"GNU Health: upload {claim['id']} failed: {error!r}\n"
                               f"{traceback.format_exc()}")
            return {"state": "failed", "message": f"import error: {error!r}",
                    "stored": 0, "skipped": 0, "failed": 0, "results": "", "studies": []}

"""Pushes a user asked for (POST /gnuhealth/studies/{id}/sync).

The REST call runs on one of Orthanc's HTTP threads, but all RPC stays in
the worker thread (proteus sessions are per thread): the call queues its
request, wakes the worker, and waits a bounded time for the answer.
"""
import queue
import threading


class _Request:
    def __init__(self, orthanc_id):
        self.orthanc_id = orthanc_id
        self.done = threading.Event()
        self.result = None


class OnDemand:
    def __init__(self, wake):
        self._wake = wake  # makes the worker thread look at once
        self._requests = queue.Queue()

    def ask(self, orthanc_id, timeout):
        """From Orthanc's HTTP thread: the worker's answer, or "queued" when
        it does not come within `timeout` seconds."""
        request = _Request(orthanc_id)
        self._requests.put(request)
        self._wake()
        if request.done.wait(timeout):
            return request.result
        return {"orthanc_id": orthanc_id, "result": "queued",
                "reason": "the worker is busy; the study will be pushed shortly"}

    def serve(self, push_study):
        "From the worker thread: answer every waiting request with push_study(id)."
        for request in self._drain():
            request.result = push_study(request.orthanc_id)
            request.done.set()

    def cancel(self):
        "The worker stops: answer whoever still waits."
        for request in self._drain():
            request.result = {"orthanc_id": request.orthanc_id, "result": "stopped",
                              "reason": "Orthanc is stopping"}
            request.done.set()

    def _drain(self):
        while True:
            try:
                yield self._requests.get_nowait()
            except queue.Empty:
                return

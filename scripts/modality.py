"""What a modality does with the worklist, for the tests and benchmarks:
ask Orthanc for its scheduled work by C-FIND MWL (pynetdicom)."""
import socket

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import ModalityWorklistInformationFind

# The keys a modality usually asks for and shows.
RETURN_KEYS = ('PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex',
               'AccessionNumber', 'StudyInstanceUID', 'RequestedProcedureID',
               'RequestedProcedureDescription')
STEP_KEYS = ('Modality', 'ScheduledStationAETitle', 'ScheduledProcedureStepStartDate',
             'ScheduledProcedureStepStartTime', 'ScheduledProcedureStepDescription')


def worklist_query(**keys):
    """A worklist query with the usual return keys; `keys` set the ones to
    match, e.g. Modality='CT', ScheduledProcedureStepStartDate='20260301'."""
    query = Dataset()
    query.SpecificCharacterSet = 'ISO_IR 192'
    for keyword in RETURN_KEYS:
        setattr(query, keyword, keys.pop(keyword, ''))
    step = Dataset()
    for keyword in STEP_KEYS:
        setattr(step, keyword, keys.pop(keyword, ''))
    if keys:
        raise TypeError(f'not a worklist key here: {sorted(keys)}')
    query.ScheduledProcedureStepSequence = [step]
    return query


class Modality(AE):
    """pynetdicom's AE with Nagle's algorithm off, as dcmtk with
    TCP_NODELAY=1 and most modalities have it: otherwise each C-FIND waits
    ~50 ms on loopback for a delayed ACK, which is the client's cost, not
    the worklist's. (pynetdicom offers no option; _create_socket is where
    its own AE makes the socket.)"""

    def _create_socket(self, assoc, address, tls_args):
        wrapped = super()._create_socket(assoc, address, tls_args)
        wrapped.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return wrapped


def ask_worklist(port, query, calling_aet='CT1', called_aet='ORTHANC', host='127.0.0.1',
                 nodelay=True):
    """One association, one C-FIND MWL, as a modality does; returns the
    answers (raises if the association or the query fails). `nodelay`
    False: pynetdicom's own socket, with Nagle's algorithm on."""
    ae = (Modality if nodelay else AE)(ae_title=calling_aet)
    ae.add_requested_context(ModalityWorklistInformationFind)
    association = ae.associate(host, port, ae_title=called_aet)
    if not association.is_established:
        raise ConnectionError(f'{called_aet} at {host}:{port} refused the association')
    try:
        answers = []
        for status, identifier in association.send_c_find(
                query, ModalityWorklistInformationFind):
            if not status or status.Status not in (0x0000, 0xFF00, 0xFF01):
                raise RuntimeError(f'C-FIND failed: {status}')
            if status.Status in (0xFF00, 0xFF01):
                answers.append(identifier)
        return answers
    finally:
        association.release()

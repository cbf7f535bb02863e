"""The two outcomes of a push the worker acts on (kept apart from the
proteus client so the worker's logic imports without proteus)."""


class GnuHealthUnavailable(Exception):
    """GNU Health cannot take the batch now; retry the same batch later."""


class StudyRejected(Exception):
    """GNU Health refused the batch because of its content (kept as failed)."""


class NotSupported(Exception):
    """GNU Health does not offer this (older module, or no access): the
    feature that needs it is skipped."""

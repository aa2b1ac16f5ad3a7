"""The small error tree every adapter raises, so callers never see a library's own exceptions."""


class ServiceError(Exception):
    """Something outside the console refused or failed; the message is for a person to act on."""


class BadInput(ServiceError):
    """What we sent was not acceptable (a bad kubeconfig, a value a chart rejects)."""


class NotFound(ServiceError):
    """The thing asked for does not exist (or no longer does, like an ended sign-in session)."""


class Conflict(ServiceError):
    """The thing exists in a state that does not allow the change."""


class Unavailable(ServiceError):
    """The service could not be reached or failed in a way we do not recognise; retrying may help."""


class NoAnswer(Unavailable):
    """The service did not answer (refused the connection or timed out): it may answer a later try."""


class OutcomeUnknown(NoAnswer):
    """A change was sent but its answer never came: it may or may not have been made."""

"""Whether the console can work: its database and its task queue answer (for the probes)."""

import logging

from django.db import DatabaseError, connection

from platforms import tasks

logger = logging.getLogger(__name__)


def problems() -> list[str]:
    """Short reasons the console cannot work now (empty when it can), safe to show to anyone.

    The details (host names, driver messages) go to the log only: the probe's caller is unauthenticated.
    """
    found = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        logger.exception("health: the database does not answer")
        found.append("database unavailable")
    try:
        tasks.queue_length()
    except Exception:
        # Any broker error (Redis refusing, its name not resolving, the queue table missing) means the
        # same to the probe; the log keeps which.
        logger.exception("health: the task queue does not answer")
        found.append("queue unavailable")
    return found

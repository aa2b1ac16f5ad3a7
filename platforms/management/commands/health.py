"""The worker's probe: exits 1 with the reasons when the database or the task queue does not answer."""

from django.core.management.base import BaseCommand, CommandError

from platforms import health


class Command(BaseCommand):
    help = "Check that the database and the task queue answer (the worker pod's liveness and readiness probe)."
    # A probe runs every few seconds: Django's system checks would cost more than the check itself.
    requires_system_checks = []

    def handle(self, *args, **options) -> None:
        problems = health.problems()
        if problems:
            raise CommandError("; ".join(problems))
        self.stdout.write("ok")

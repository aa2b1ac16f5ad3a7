"""Django app configuration for the platforms app."""

from django.apps import AppConfig


class PlatformsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "platforms"

    def ready(self) -> None:
        # Connects the worker's signal receivers (platforms.tasks) in the qcluster process, before it
        # starts its workers.
        from platforms import tasks  # noqa: F401

"""Schedules the expiry pass every minute (django-q2 Schedule row, created once): platforms.tasks.expire_platforms."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="binderadmin-expiry",
        defaults={"func": "platforms.tasks.expire_platforms", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="binderadmin-expiry").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("platforms", "0010_rollback_and_expiry"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]

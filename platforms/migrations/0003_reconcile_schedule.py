"""Schedules the reconcile task every minute (django-q2 Schedule row, created once)."""

from django.db import migrations


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="binderadmin-reconcile",
        defaults={"func": "platforms.tasks.reconcile", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="binderadmin-reconcile").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("platforms", "0002_deploy_engine"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedule, delete_schedule)]

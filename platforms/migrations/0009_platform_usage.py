"""The worker's readings of each platform's hub usage, and the schedule of the pass that takes them."""

import django.db.models.deletion
from django.db import migrations, models


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name="binderadmin-usage",
        defaults={"func": "platforms.tasks.refresh_usage", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def delete_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="binderadmin-usage").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("platforms", "0008_cluster_capacity"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.CreateModel(
            name="PlatformUsage",
            fields=[
                (
                    "platform",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="usage",
                        serialize=False,
                        to="platforms.platform",
                    ),
                ),
                ("active_users", models.PositiveIntegerField(blank=True, null=True)),
                ("servers", models.PositiveIntegerField(blank=True, null=True)),
                ("read_at", models.DateTimeField(blank=True, null=True)),
                ("checked_at", models.DateTimeField(blank=True, db_index=True, null=True)),
                ("error", models.CharField(blank=True, max_length=300)),
            ],
        ),
        migrations.RunPython(create_schedule, delete_schedule),
    ]

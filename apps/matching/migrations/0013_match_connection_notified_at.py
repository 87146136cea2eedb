from django.db import migrations, models
from django.db.models import F


def connections_so_far_were_emailed(apps, schema_editor):
    # Before this field, a connection's emails were sent as it was made: do not send them again.
    Match = apps.get_model("matching", "Match")
    Match.objects.filter(connected_at__isnull=False).update(connection_notified_at=F("connected_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("matching", "0012_match_fingerprint"),
    ]

    operations = [
        migrations.AddField(
            model_name="match",
            name="connection_notified_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="contacts emailed at"),
        ),
        migrations.RunPython(connections_so_far_were_emailed, migrations.RunPython.noop),
    ]

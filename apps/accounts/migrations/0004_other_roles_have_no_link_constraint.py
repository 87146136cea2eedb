from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_other_roles_have_no_link"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='user',
            constraint=models.CheckConstraint(condition=models.Q(('role__in', ['focal_point', 'provider']), models.Q(('party__isnull', True), ('provider__isnull', True)), _connector='OR'), name='other_roles_have_no_link'),
        ),
    ]


from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('oauth', '0007_sign_in_settings_moved_to_sso'),
    ]

    operations = [
        migrations.AddField(
            model_name='grant',
            name='refreshing_until',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]

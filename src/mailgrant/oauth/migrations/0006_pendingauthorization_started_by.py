
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('oauth', '0005_related_ldaps_in_directory'),
    ]

    operations = [
        migrations.AddField(
            model_name='pendingauthorization',
            name='started_by',
            field=models.CharField(blank=True, help_text='Who started it (user, API key, command line).', max_length=200),
        ),
    ]

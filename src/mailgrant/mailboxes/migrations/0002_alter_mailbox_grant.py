
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('mailboxes', '0001_initial'),
        ('oauth', '0007_sign_in_settings_moved_to_sso'),
    ]

    operations = [
        migrations.AlterField(
            model_name='mailbox',
            name='grant',
            field=models.ForeignKey(blank=True, help_text="The authorized account this mailbox uses; empty: the client's default.", null=True, on_delete=django.db.models.deletion.PROTECT, related_name='mailboxes', to='oauth.grant'),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('directory', '0001_initial'),
        ('oauth', '0004_oauthclient_related_ldaps_and_more'),
    ]

    # The directories' table is the same: Django's state only.
    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.AlterField(
            model_name='oauthclient',
            name='related_ldaps',
            field=models.ManyToManyField(blank=True, help_text='User type: a signing-in user is linked to the directory user with the same username instead of a new one being created.', related_name='clients', to='directory.ldapdirectory', verbose_name='Related LDAPs'),
        )]),
    ]

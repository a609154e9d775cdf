import django.db.models.deletion
import mailgrant.common.fields
import mailgrant.directory.models
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    # The models moved here from sso with their tables (directory_ldapdirectory, directory_directoryaccount):
    # only Django's state changes, no row moves.
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("sso", "0002_ldap_ca_certificate"),
    ]

    state_operations = [
        migrations.CreateModel(
            name='LdapDirectory',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=200, unique=True)),
                ('server_uri', models.CharField(help_text='e.g. ldap://ldap.example.com:389', max_length=500, verbose_name='Server URI')),
                ('security', models.CharField(choices=[('none', 'None (plain LDAP)'), ('starttls', 'StartTLS'), ('ldaps', 'LDAPS (TLS from the start)')], default='starttls', max_length=10)),
                ('verify_ssl', models.BooleanField(default=True, verbose_name='Verify SSL')),
                ('ca_certificate', models.TextField(blank=True, help_text="PEM of the CA that signed the server's certificate, when the system does not trust it already (an internal CA). Empty: the system's CAs.", verbose_name='CA certificate')),
                ('bind_dn', models.CharField(blank=True, max_length=500, verbose_name='Bind DN')),
                ('bind_password', mailgrant.common.fields.SealedField(blank=True, help_text='Write-only: stored encrypted, never shown again.')),
                ('base_dn', models.CharField(max_length=500, verbose_name='Base DN')),
                ('user_filter', models.CharField(default='(objectClass=inetOrgPerson)', help_text='LDAP filter selecting the people to import.', max_length=1000)),
                ('disabled_filter', models.CharField(blank=True, help_text='LDAP filter matching disabled people, e.g. (pwdAccountLockedTime=*) or, on Active Directory, (userAccountControl:1.2.840.113556.1.4.803:=2). Empty: none.', max_length=1000)),
                ('attribute_map', models.JSONField(blank=True, default=mailgrant.directory.models.default_attribute_map, help_text='User field <- LDAP attribute, e.g. {"username": "uid", "email": "mail"}.')),
                ('sync_interval', models.PositiveIntegerField(default=60, help_text='0: only when asked (button or CLI).', verbose_name='Sync every (minutes)')),
                ('show_in_login', models.BooleanField(default=False, help_text='Its people may sign in on the login page with their directory password.')),
                ('status', models.CharField(choices=[('enabled', 'Enabled'), ('disabled', 'Disabled')], default='enabled', max_length=10)),
                ('last_sync_at', models.DateTimeField(blank=True, null=True)),
                ('last_sync_summary', models.CharField(blank=True, max_length=500)),
                ('last_error', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'verbose_name': 'LDAP directory',
                'verbose_name_plural': 'LDAP directories',
                'db_table': 'sso_ldapdirectory',
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='DirectoryAccount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('username', models.CharField(max_length=150)),
                ('dn', models.CharField(max_length=1000, verbose_name='DN')),
                ('is_disabled', models.BooleanField(default=False)),
                ('synced_at', models.DateTimeField()),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='directory_account', to=settings.AUTH_USER_MODEL)),
                ('directory', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='accounts', to='directory.ldapdirectory')),
            ],
            options={
                'db_table': 'sso_directoryaccount',
                'ordering': ['directory__name', 'username'],
                'constraints': [models.UniqueConstraint(fields=('directory', 'username'), name='one_account_per_directory_username')],
            },
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=state_operations),
    ]

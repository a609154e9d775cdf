import django.db.models.deletion
from django.db import migrations, models

SETTINGS = (
    "user_data_source",
    "username_attribute",
    "user_fields",
    "user_create_expression",
    "login_button_caption",
    "login_button_icon",
    "login_button_image",
)


def copy_to_sign_in(apps, schema_editor):
    OAuthClient = apps.get_model("oauth", "OAuthClient")
    SignIn = apps.get_model("sso", "SignIn")
    for client in OAuthClient.objects.all():
        sign_in = SignIn.objects.create(
            client=client, **{name: getattr(client, name) for name in SETTINGS}
        )
        sign_in.related_ldaps.set(client.related_ldaps.all())


def copy_back(apps, schema_editor):
    OAuthClient = apps.get_model("oauth", "OAuthClient")
    SignIn = apps.get_model("sso", "SignIn")
    for sign_in in SignIn.objects.all():
        client = OAuthClient.objects.get(pk=sign_in.client_id)
        for name in SETTINGS:
            setattr(client, name, getattr(sign_in, name))
        client.save(update_fields=list(SETTINGS))
        client.related_ldaps.set(sign_in.related_ldaps.all())


class Migration(migrations.Migration):

    """The sign-in half of every client moves from its own columns into SignIn, with its
    related LDAPs; oauth 0007 then drops the columns."""

    dependencies = [
        ('directory', '0001_initial'),
        ('oauth', '0006_pendingauthorization_started_by'),
        ('sso', '0003_directory_models_moved'),
    ]
    run_before = [('oauth', '0007_sign_in_settings_moved_to_sso')]

    operations = [
        migrations.CreateModel(
            name='SignIn',
            fields=[
                ('client', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='sign_in', serialize=False, to='oauth.oauthclient')),
                ('user_data_source', models.CharField(choices=[('id_token', 'ID token claims'), ('endpoint', 'User data endpoint')], default='id_token', max_length=20)),
                ('username_attribute', models.CharField(blank=True, max_length=200)),
                ('user_fields', models.JSONField(blank=True, default=dict, help_text='User field <- claim, e.g. {"email": "email"}.')),
                ('user_create_expression', models.TextField(blank=True)),
                ('login_button_caption', models.CharField(blank=True, max_length=200)),
                ('login_button_icon', models.CharField(blank=True, help_text='A named icon (google, microsoft, key, ...) or, after an upload, the image.', max_length=200)),
                ('login_button_image', models.TextField(blank=True, editable=False)),
                ('related_ldaps', models.ManyToManyField(blank=True, help_text='User type: a signing-in user is linked to the directory user with the same username instead of a new one being created.', related_name='sign_ins', to='directory.ldapdirectory', verbose_name='Related LDAPs')),
            ],
            options={
                'verbose_name': 'sign-in settings',
                'verbose_name_plural': 'sign-in settings',
            },
        ),
        migrations.RunPython(copy_to_sign_in, copy_back),
    ]

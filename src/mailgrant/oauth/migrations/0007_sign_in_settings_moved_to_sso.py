from django.db import migrations


class Migration(migrations.Migration):
    """The sign-in settings live in sso.SignIn now (sso 0004 copied them there first)."""


    dependencies = [
        ('oauth', '0006_pendingauthorization_started_by'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='oauthclient',
            name='login_button_caption',
        ),
        migrations.RemoveField(
            model_name='oauthclient',
            name='login_button_icon',
        ),
        migrations.RemoveField(
            model_name='oauthclient',
            name='login_button_image',
        ),
        migrations.RemoveField(
            model_name='oauthclient',
            name='related_ldaps',
        ),
        migrations.RemoveField(
            model_name='oauthclient',
            name='user_create_expression',
        ),
        migrations.RemoveField(
            model_name='oauthclient',
            name='user_data_source',
        ),
        migrations.RemoveField(
            model_name='oauthclient',
            name='user_fields',
        ),
        migrations.RemoveField(
            model_name='oauthclient',
            name='username_attribute',
        ),
    ]

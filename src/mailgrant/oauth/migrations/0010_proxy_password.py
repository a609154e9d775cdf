"""The proxy's password moves out of its URL into the vault; the URL keeps *** in its place."""

from typing import Any

from django.db import migrations, models

import mailgrant.common.fields
from mailgrant.common.fields import reveal
from mailgrant.common.http import (
    PROXY_PASSWORD_MASK,
    proxy_masked,
    proxy_password_of,
    proxy_with_password,
)


def seal_proxy_passwords(apps: Any, schema_editor: Any) -> None:
    OAuthClient = apps.get_model("oauth", "OAuthClient")
    for client in OAuthClient.objects.exclude(proxy=""):
        password = proxy_password_of(client.proxy)
        if password and password != PROXY_PASSWORD_MASK:
            # The historical field is the SealedField itself: it seals the plaintext.
            OAuthClient.objects.filter(pk=client.pk).update(
                proxy=proxy_masked(client.proxy), proxy_password=password
            )


def unseal_proxy_passwords(apps: Any, schema_editor: Any) -> None:
    OAuthClient = apps.get_model("oauth", "OAuthClient")
    for client in OAuthClient.objects.exclude(proxy_password=""):
        password = reveal(client.proxy_password)
        OAuthClient.objects.filter(pk=client.pk).update(
            proxy=proxy_with_password(client.proxy, password)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("oauth", "0009_grant_issue_token"),
    ]

    operations = [
        migrations.AddField(
            model_name="oauthclient",
            name="proxy_password",
            field=mailgrant.common.fields.SealedField(blank=True, editable=False),
        ),
        migrations.AlterField(
            model_name="oauthclient",
            name="proxy",
            field=models.CharField(
                blank=True,
                help_text="e.g. http://proxy.example.com:3128 or http://user:password@proxy:3128; "
                "empty: direct. The password is stored encrypted and shown as ***; keep *** to "
                "keep it. A new proxy host, port or user needs its password typed again.",
                max_length=500,
            ),
        ),
        migrations.RunPython(seal_proxy_passwords, unseal_proxy_passwords),
    ]

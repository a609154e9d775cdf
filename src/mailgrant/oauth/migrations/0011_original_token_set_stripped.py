from django.db import migrations


def strip_refresh_tokens(apps, schema_editor):
    """The original token set is a record of the first Validate: its refresh token goes."""
    Grant = apps.get_model("oauth", "Grant")
    for grant in Grant.objects.exclude(original_token_set="").iterator():
        original = grant.original_token_set
        if not original:
            continue
        tokens = original.reveal_json()
        if tokens.get("refresh_token") is None:
            continue
        tokens["refresh_token"] = None
        Grant.objects.filter(pk=grant.pk).update(original_token_set=tokens)


class Migration(migrations.Migration):

    dependencies = [
        ("oauth", "0010_proxy_password"),
    ]

    operations = [
        migrations.RunPython(strip_refresh_tokens, migrations.RunPython.noop),
    ]

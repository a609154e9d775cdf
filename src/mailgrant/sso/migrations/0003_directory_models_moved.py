from django.db import migrations


def content_types_to_directory(apps, schema_editor):
    """Permissions granted on directories keep pointing at them."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("ldapdirectory", "directoryaccount"):
        if not ContentType.objects.filter(app_label="directory", model=model).exists():
            ContentType.objects.filter(app_label="sso", model=model).update(app_label="directory")


def content_types_to_sso(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("ldapdirectory", "directoryaccount"):
        if not ContentType.objects.filter(app_label="sso", model=model).exists():
            ContentType.objects.filter(app_label="directory", model=model).update(app_label="sso")


class Migration(migrations.Migration):
    """LDAP directories moved to the directory app, tables and rows untouched."""

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("directory", "0001_initial"),
        ("oauth", "0005_related_ldaps_in_directory"),
        ("sso", "0002_ldap_ca_certificate"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name="directoryaccount", name="directory"),
                migrations.RemoveField(model_name="directoryaccount", name="user"),
                migrations.DeleteModel(name="LdapDirectory"),
                migrations.DeleteModel(name="DirectoryAccount"),
            ]
        ),
        migrations.RunPython(content_types_to_directory, content_types_to_sso),
    ]

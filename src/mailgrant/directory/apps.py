from django.apps import AppConfig


class DirectoryConfig(AppConfig):
    name = "mailgrant.directory"
    label = "directory"
    verbose_name = "LDAP directories"

from django.apps import AppConfig


class CommonConfig(AppConfig):
    name = "mailgrant.common"
    label = "common"
    verbose_name = "Audit"

from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "mailgrant.notify"
    label = "notify"
    verbose_name = "Webhooks and alerts"

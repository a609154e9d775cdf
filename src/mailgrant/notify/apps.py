from django.apps import AppConfig


class NotifyConfig(AppConfig):
    name = "mailgrant.notify"
    label = "notify"
    verbose_name = "Webhooks and alerts"

    def ready(self) -> None:
        from mailgrant.notify import health  # noqa: F401  # registers the webhook reasons

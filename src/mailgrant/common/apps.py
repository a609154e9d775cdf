from django.apps import AppConfig
from django.core import checks


class CommonConfig(AppConfig):
    name = "mailgrant.common"
    label = "common"
    verbose_name = "Audit"

    def ready(self) -> None:
        from mailgrant.common.home import home_check, home_secure

        home_secure()  # before any connection opens the database
        checks.register(home_check, checks.Tags.security)

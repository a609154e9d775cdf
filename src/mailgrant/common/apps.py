import logging

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.urls import register_converter


class CommonConfig(AppConfig):
    name = "mailgrant.common"
    label = "common"
    verbose_name = "Audit"

    def ready(self) -> None:
        from mailgrant.common.converters import IdConverter
        from mailgrant.common.home import home_check, home_secure

        home_secure()  # before any connection opens the database
        checks.register(home_check, checks.Tags.security)

        # Once, before any URLconf is read: every HTML route with an id uses `<id:...>`.
        register_converter(IdConverter, "id")

        if settings.DEBUG:
            logging.getLogger("mailgrant").warning(
                "MAILGRANT_DEBUG is on: never in production. Error pages show code and local "
                "values to superusers, and every query is kept in memory."
            )

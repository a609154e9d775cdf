from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "mailgrant.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        # The directory admin lives beside the SSO admin (sso/admin.py), in its own module.
        from mailgrant.sso import directory_admin  # noqa: F401

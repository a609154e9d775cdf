from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "mailgrant.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        from mailgrant.oauth.callbacks import completion_register
        from mailgrant.oauth.models import PendingAuthorization
        from mailgrant.sso.views import complete

        completion_register(purpose=PendingAuthorization.Purpose.LOGIN, view=complete)

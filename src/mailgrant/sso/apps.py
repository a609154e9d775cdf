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

        from django.contrib.auth.signals import user_logged_in

        from mailgrant.sso.lockout import login_attempts_reset

        def reset(sender: object, request: object, user: object, **kwargs: object) -> None:
            login_attempts_reset(user=user)

        user_logged_in.connect(reset, weak=False, dispatch_uid="mailgrant.sso.lockout.reset")

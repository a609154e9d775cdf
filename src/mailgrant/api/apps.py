from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "mailgrant.api"
    label = "api"
    verbose_name = "API"

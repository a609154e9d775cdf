from django.apps import AppConfig


class WorkerConfig(AppConfig):
    name = "mailgrant.worker"
    label = "worker"
    verbose_name = "Workers"

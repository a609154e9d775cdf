from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailgrant.mailboxes"
    label = "mailboxes"
    verbose_name = "Mailboxes"

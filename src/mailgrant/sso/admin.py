from django.contrib import admin

from mailgrant.sso.models import SsoIdentity


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    """Who signed in through which client. Adding one links an existing user to a person at the
    provider (by subject) before their first sign-in."""

    list_display = ["user", "client", "subject", "created_at", "last_login_at"]
    list_filter = ["client"]
    search_fields = ["subject", "user__username", "user__email"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at", "last_login_at"]

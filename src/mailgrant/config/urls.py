from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from mailgrant.api.api import api, unknown_path

admin.site.site_header = "mailgrant"
admin.site.site_title = "mailgrant"
admin.site.index_title = "OAuth2 clients for mailboxes and sign-in"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("oauth/", include("mailgrant.oauth.urls")),
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", unknown_path),
]

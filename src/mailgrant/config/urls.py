from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from mailgrant.api import api
from mailgrant.api.api import unknown_path
from mailgrant.api.metrics import metrics_view
from mailgrant.sso.urls import account_urlpatterns

admin.site.site_header = "mailgrant"
admin.site.site_title = "mailgrant"
admin.site.index_title = "OAuth2 clients for mailboxes and sign-in"
admin.site.login_template = "sso/admin_login.html"  # the sign-in buttons above the form
admin.site.index_template = "worker/admin_index.html"  # the health dashboard above the apps

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("oauth/", include("mailgrant.oauth.urls")),
    path("", include("mailgrant.sso.urls")),
    *account_urlpatterns,
    path("metrics", metrics_view, name="metrics"),
    path("api/v1/", api.urls()),
    re_path(r"^api/v1/(?P<rest>.*)$", unknown_path),
]

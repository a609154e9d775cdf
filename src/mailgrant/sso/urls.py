from django.contrib.auth import views as auth_views
from django.urls import path

from mailgrant.sso import views

app_name = "sso"

urlpatterns = [
    path("sso/<id:client_id>/start/", views.start, name="start"),
    path("accounts/", views.signed_in, name="signed_in"),
]

# Named without the namespace: Django's auth machinery looks for "login" and "logout".
account_urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(template_name="sso/login.html"),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]

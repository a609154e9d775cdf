from django.urls import path

from mailgrant.oauth import views

app_name = "oauth"

urlpatterns = [
    path("callback/<id:client_id>/", views.callback, name="callback"),
]

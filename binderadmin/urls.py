"""Top-level URL routes: the sign-in flow and the platforms app."""

from django.urls import include, path

urlpatterns = [
    path("", include("platforms.urls")),
]

"""URL routes of the console."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from mozilla_django_oidc.views import OIDCAuthenticationRequestView, OIDCLogoutView

from platforms.views import auth, platforms

urlpatterns = [
    path("", platforms.platform_list, name="platform_list"),
    path(
        "oidc/authenticate/",
        login_not_required(OIDCAuthenticationRequestView.as_view()),
        name="oidc_authentication_init",
    ),
    path(
        "oidc/callback/",
        login_not_required(auth.CallbackView.as_view()),
        name="oidc_authentication_callback",
    ),
    path("oidc/logout/", login_not_required(OIDCLogoutView.as_view()), name="oidc_logout"),
    path("signed-out/", auth.logged_out, name="logged_out"),
    path("sign-in-failed/", auth.login_failed, name="login_failed"),
]

"""URL routes of the console."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from mozilla_django_oidc.views import OIDCAuthenticationRequestView, OIDCLogoutView

from platforms.views import access, audit, auth, clusters, health, platforms

urlpatterns = [
    path("", platforms.platform_list, name="platform_list"),
    path("launch/", platforms.platform_create, name="platform_create"),
    path("launch/validate/", platforms.platform_validate, name="platform_validate"),
    path("platforms/<slug:name>/", platforms.platform_detail, name="platform_detail"),
    path("platforms/<slug:name>/edit/", platforms.platform_edit, name="platform_edit"),
    path("platforms/<slug:name>/delete/", platforms.platform_delete, name="platform_delete"),
    path("platforms/<slug:name>/status/", platforms.platform_status, name="platform_status"),
    path("platforms/<slug:name>/retry/", platforms.platform_retry, name="platform_retry"),
    path("platforms/<slug:name>/rollback/", platforms.platform_rollback, name="platform_rollback"),
    path("platforms/<slug:name>/services/<slug:service>/", platforms.service_redirect, name="service_redirect"),
    path("platforms/<slug:name>/users/", access.platform_users, name="platform_users"),
    path("platforms/<slug:name>/users/search/", access.platform_users_search, name="platform_users_search"),
    path("platforms/<slug:name>/users/add/", access.platform_users_add, name="platform_users_add"),
    path("platforms/<slug:name>/users/remove/", access.platform_users_remove, name="platform_users_remove"),
    path("platforms/<slug:name>/users/repair/", access.platform_users_repair, name="platform_users_repair"),
    path("access/", access.realm_access, name="access"),
    path("access/search/", access.realm_access_search, name="access_search"),
    path("access/add/", access.realm_access_add, name="access_add"),
    path("access/remove/", access.realm_access_remove, name="access_remove"),
    path("access/repair/", access.realm_access_repair, name="access_repair"),
    path("audit/", audit.audit_page, name="audit_log"),
    path("audit/export.csv", audit.audit_export, {"export_format": "csv"}, name="audit_export_csv"),
    path("audit/export.json", audit.audit_export, {"export_format": "json"}, name="audit_export_json"),
    path("app-versions/refresh/", platforms.app_versions_refresh, name="app_versions_refresh"),
    path("clusters/", clusters.cluster_list, name="cluster_list"),
    path("clusters/register/", clusters.cluster_create, name="cluster_create"),
    path("clusters/contexts/", clusters.kubeconfig_contexts, name="kubeconfig_contexts"),
    path("clusters/<slug:name>/", clusters.cluster_detail, name="cluster_detail"),
    path("clusters/<slug:name>/edit/", clusters.cluster_edit, name="cluster_edit"),
    path("clusters/<slug:name>/check/", clusters.cluster_check, name="cluster_check"),
    path("clusters/<slug:name>/delete/", clusters.cluster_delete, name="cluster_delete"),
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
    path("health/", health.health_check, name="health"),
]

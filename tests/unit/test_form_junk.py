"""Generated junk thrown at the launch and cluster forms never gives a 500 and never saves anything."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platforms.models import Cluster, Operation, Platform

junk_text = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=5000),
    st.sampled_from(["", " ", "0", "-1", "1e309", "NaN", "inf", "-0.0", "９", "١٢", "'; DROP TABLE x;--", "\x00"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)
FIELDS = [
    "servers_per_user",
    "notebook_cpus",
    "notebook_ram_gb",
    "notebook_storage_gb",
    "registry_storage_gb",
    "expires_at",
]
DEFAULTS = {"servers_per_user": "3", "notebook_cpus": "1", "notebook_ram_gb": "2", "notebook_storage_gb": "10"}


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=junk_text, field=st.sampled_from(FIELDS), value=junk_text, version=junk_text)
def test_launch_form_survives_junk(admin_client, cluster, stub_app_versions, name, field, value, version):
    data = {"name": name, "cluster": str(cluster.pk), "app_version": version, **DEFAULTS, "registry_storage_gb": "10"}
    data[field] = value
    data = {k: v.replace("\x00", "") for k, v in data.items()}  # Django's test client refuses NUL in POST
    response = admin_client.post(reverse("platform_create"), data)
    assert response.status_code == 200
    assert not Platform.objects.exists()
    assert not Operation.objects.exists()


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=junk_text,
    kubeconfig=st.one_of(junk_text, st.just("apiVersion: v1\ncontexts: [{name: x}]\n")),
    context=junk_text,
    exposure=junk_text,
    domain=junk_text,
)
def test_cluster_form_survives_junk(admin_client, fake_kube, name, kubeconfig, context, exposure, domain):
    data = {"name": name, "kubeconfig": kubeconfig, "context": context, "exposure": exposure}
    data["ingress_base_domain"] = domain
    data = {k: v.replace("\x00", "") for k, v in data.items()}
    response = admin_client.post(reverse("cluster_create"), data)
    assert response.status_code == 200
    assert not Cluster.objects.exists()

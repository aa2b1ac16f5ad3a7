"""The pure access rules, the groups claim of refreshed tokens, and the Keycloak adapter's error translation."""

import jwt
import pytest
from keycloak.exceptions import KeycloakConnectionError, KeycloakGetError, KeycloakPostError

from platforms.access_rules import services_reached
from platforms.services.errors import BadInput, Conflict, NotFound, Unavailable
from platforms.services.keycloak import GroupDirectory
from platforms.services.oidc import groups_claim


@pytest.mark.parametrize(
    ("paths", "reached"),
    [
        ({"/admins"}, {"binderhub", "jupyterhub"}),
        ({"/platform-users"}, {"binderhub", "jupyterhub"}),
        ({"/platforms/demo"}, {"binderhub", "jupyterhub"}),
        ({"/platforms/demo/binderhub"}, {"binderhub"}),
        ({"/platforms/demo/jupyterhub", "/platforms/other"}, {"jupyterhub"}),
        ({"/platforms/demo-2", "/platforms/dem", "/platforms/other/binderhub"}, set()),
        (set(), set()),
    ],
)
def test_services_reached_follows_the_groups(paths, reached):
    assert services_reached(paths, "demo") == reached


def test_groups_claim_is_read_from_a_fresh_token():
    token = jwt.encode({"sub": "1", "groups": ["/platforms/demo", 3]}, "k" * 32, algorithm="HS256")
    assert groups_claim(token) == ("/platforms/demo",)
    assert groups_claim(jwt.encode({"sub": "1"}, "k" * 32, algorithm="HS256")) is None
    assert groups_claim("not a token") is None
    assert groups_claim("") is None


def directory_raising(exc: Exception) -> GroupDirectory:
    directory = GroupDirectory("http://127.0.0.1:1", "realm", "client", "secret", timeout=3)

    def fail(*args, **kwargs):
        raise exc

    for name in ("get_group_by_path", "get_users", "get_user", "create_group", "group_user_add"):
        setattr(directory._admin, name, fail)
    directory._get_list = fail  # the listings it asks for by URL (clients by clientId among them)
    return directory


def test_no_answer_becomes_unavailable_naming_the_timeout():
    directory = directory_raising(KeycloakConnectionError("Can't connect to server"))
    with pytest.raises(Unavailable, match=r"did not answer in time to search users \(timeout 3s"):
        directory.search_users("x")


@pytest.mark.parametrize(
    ("code", "error"), [(400, BadInput), (403, Unavailable), (404, NotFound), (409, Conflict), (500, Unavailable)]
)
def test_http_errors_become_ours(code, error):
    directory = directory_raising(KeycloakPostError(error_message="boom", response_code=code, response_body=b"boom"))
    with pytest.raises(error):
        directory.ensure_client("c", "C", "s", [])


def test_a_missing_group_is_none_and_a_missing_user_is_a_clear_not_found():
    directory = directory_raising(KeycloakGetError(error_message="gone", response_code=404, response_body=b"{}"))
    assert directory.find_group("/platforms/demo") is None
    with pytest.raises(NotFound, match="no longer exists in Keycloak"):
        directory.get_user("0b6c6f2e-2d7b-4d43-9d3a-0f7c2d7d9f7e")


@pytest.mark.parametrize("user_id", ["../../clients", "", "a/b", "x" * 300])
def test_odd_user_ids_are_refused_before_any_call(user_id):
    directory = directory_raising(AssertionError("no call expected"))
    with pytest.raises(BadInput):
        directory.get_user(user_id)


@pytest.mark.parametrize("path", ["platforms", "/platforms/../admins", "/a//b", "/a?b"])
def test_odd_group_paths_are_refused_before_any_call(path):
    directory = directory_raising(AssertionError("no call expected"))
    with pytest.raises(BadInput):
        directory.find_group(path)

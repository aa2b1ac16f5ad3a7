"""An HTTP client that keeps cookies the way a browser does, for driving Keycloak's login pages."""

import http.cookiejar
from urllib.parse import urlparse

import requests


class LoopbackIsSecure(http.cookiejar.DefaultCookiePolicy):
    """Browsers treat http://127.0.0.1 as a secure context and send Secure cookies to it; Keycloak
    marks its cookies Secure even over http, and Python's cookiejar would never send them back."""

    def return_ok_secure(self, cookie, request) -> bool:
        if urlparse(request.get_full_url()).hostname in ("127.0.0.1", "localhost"):
            return True
        return super().return_ok_secure(cookie, request)


class BrowserSession(requests.Session):
    """A requests session whose Cookie headers follow LoopbackIsSecure."""

    def __init__(self):
        super().__init__()
        self.cookies.set_policy(LoopbackIsSecure())

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        # requests copies the session's cookies into a fresh jar with the default policy;
        # build the Cookie header from our own jar instead (redirects reuse it too).
        prepared = super().prepare_request(request)
        prepared.headers.pop("Cookie", None)
        prepared.prepare_cookies(self.cookies)
        return prepared


def new_browser() -> requests.Session:
    return BrowserSession()

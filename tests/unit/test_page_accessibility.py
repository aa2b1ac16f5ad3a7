"""Every page a person uses has a title, and every control on it a name a screen reader can say."""

from html.parser import HTMLParser

import pytest

from platforms.models import Operation

CONTROLS = {"input", "select", "textarea"}
UNNAMED_INPUTS = {"hidden", "submit", "button"}


class PageAudit(HTMLParser):
    """Collects the title, the labels, and the controls and buttons of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.title = ""
        self.label_targets: set[str] = set()
        self.controls: list[dict] = []
        self.buttons: list[dict] = []
        self.open: list[tuple[str, dict]] = []  # title, label and button being read

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(attributes["for"])
        if tag in CONTROLS and attributes.get("type", "text") not in UNNAMED_INPUTS:
            self.controls.append(attributes)
        if tag in ("title", "button"):
            self.open.append((tag, {**attributes, "text": ""}))

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1][0] == tag:
            _, element = self.open.pop()
            if tag == "title":
                self.title = element["text"].strip()
            else:
                self.buttons.append(element)

    def handle_data(self, data: str) -> None:
        if self.open:
            self.open[-1][1]["text"] += data


def unnamed(audit: PageAudit) -> list[str]:
    """The controls without a label or aria-label, and the buttons without text or aria-label."""
    problems = [
        str(control)
        for control in audit.controls
        if control.get("id") not in audit.label_targets and not control.get("aria-label")
    ]
    problems += [str(button) for button in audit.buttons if not button["text"].strip() and not button.get("aria-label")]
    return problems


PAGES = [
    "/",
    "/launch/",
    "/platforms/demo/",
    "/platforms/demo/edit/",
    "/platforms/demo/delete/",
    "/platforms/demo/users/",
    "/platforms/demo/users/?q=b",  # with search results and their Add buttons
    "/access/",
    "/audit/?platform=demo",
    "/clusters/",
    "/clusters/register/",
    "/clusters/prod/",
    "/clusters/prod/edit/",
]


@pytest.mark.parametrize("url", PAGES)
def test_pages_have_titles_and_named_controls(admin_client, admin_user, platform, stub_app_versions, directory, url):
    directory.add_user("carol", ())
    Operation.objects.request(platform, Operation.Kind.INSTALL, admin_user)
    response = admin_client.get(url)
    assert response.status_code == 200
    audit = PageAudit()
    audit.feed(response.content.decode())
    assert audit.title.endswith(" · BinderAdmin") and len(audit.title) > len(" · BinderAdmin")
    assert unnamed(audit) == []


def test_the_audit_finds_an_unlabelled_control_and_an_empty_button():
    audit = PageAudit()
    audit.feed('<title>x</title><input id="a"><label for="b">B</label><input id="b"><button></button>')
    assert len(unnamed(audit)) == 2

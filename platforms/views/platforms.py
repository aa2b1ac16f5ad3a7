"""Platform pages: the list of BinderHub platforms a user may see."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@login_required
@require_GET
def platform_list(request: HttpRequest) -> HttpResponse:
    """The platforms the user may see (none exist until the launch form arrives)."""
    ctx = {"platforms": []}
    return render(request, "platforms/platform_list.html", ctx)

"""Template context shared by every page."""

from django.http import HttpRequest

from web.forms import STAR_VALUES


def star_values(request: HttpRequest) -> dict[str, list[str]]:
    return {"star_values": STAR_VALUES}

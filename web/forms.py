"""Forms for rating, searching and signing up."""

from decimal import Decimal
from typing import TYPE_CHECKING

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User

from movies.importing import RESERVED_PREFIX, is_reserved_username
from movies.models import STAR_CHOICES
from movies.services import InvalidStars, parse_stars

STAR_VALUES = [f"{s:.1f}" for s in STAR_CHOICES]


class RatingForm(forms.Form):
    stars = forms.CharField(max_length=8)

    def clean_stars(self) -> Decimal:
        try:
            return parse_stars(self.cleaned_data["stars"])
        except InvalidStars as error:
            raise forms.ValidationError(str(error)) from error


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, strip=True)
    genre = forms.CharField(required=False, max_length=64)
    year_from = forms.IntegerField(required=False, min_value=1870, max_value=2100)
    year_to = forms.IntegerField(required=False, min_value=1870, max_value=2100)
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Best match / most popular"),
            ("relevance", "Best match"),
            ("popular", "Most popular"),
            ("rated", "Highest rated"),
            ("newest", "Newest"),
            ("title", "Title"),
        ],
    )


if TYPE_CHECKING:
    _UserCreationForm = UserCreationForm[User]  # generic in the stubs only
else:
    _UserCreationForm = UserCreationForm


class SignUpForm(_UserCreationForm):
    class Meta(UserCreationForm.Meta):  # type: ignore[name-defined]  # the stubs leave the form's Meta out
        fields = ("username",)

    def clean_username(self) -> str:
        username = super().clean_username()
        if is_reserved_username(username):
            raise forms.ValidationError(
                f"Names starting with “{RESERVED_PREFIX}” are kept for imported MovieLens users."
            )
        return username

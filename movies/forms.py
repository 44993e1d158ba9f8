"""Forms for rating, searching and signing up."""
from django import forms
from django.contrib.auth.forms import UserCreationForm

from movies.models import STAR_CHOICES

STAR_VALUES = [f"{s:.1f}" for s in STAR_CHOICES]


class RatingForm(forms.Form):
    stars = forms.ChoiceField(choices=[(v, v) for v in STAR_VALUES])


class SearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, strip=True)
    genre = forms.CharField(required=False, max_length=64)
    year_from = forms.IntegerField(required=False, min_value=1870, max_value=2100)
    year_to = forms.IntegerField(required=False, min_value=1870, max_value=2100)


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        fields = ("username",)

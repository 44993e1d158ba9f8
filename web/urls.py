"""URL routes of the pages and the JSON API."""

from django.contrib.auth import views as auth_views
from django.urls import path

from web import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("movies/", views.movie_list, name="movie_list"),
    path("movies/suggest/", views.suggest, name="suggest"),
    path("movies/<int:movie_id>/", views.movie_detail, name="movie_detail"),
    path("movies/<int:movie_id>/rate/", views.rate, name="rate"),
    path("tags/<int:tag_id>/", views.tag_detail, name="tag_detail"),
    path("for-you/", views.recommendations, name="recommendations"),
    path("my-ratings/", views.my_ratings, name="my_ratings"),
    path("hidden/", views.hidden_list, name="hidden_list"),
    path("movies/<int:movie_id>/hide/", views.hide, name="hide"),
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/recommendations/", api.recommendations, name="api_recommendations"),
    path("api/movies/", api.movies, name="api_movies"),
    path("api/movies/<int:movie_id>/similar/", api.similar, name="api_similar"),
    path("api/ratings/<int:movie_id>/", api.rating, name="api_rating"),
    path("api/hidden/<int:movie_id>/", api.hidden, name="api_hidden"),
]

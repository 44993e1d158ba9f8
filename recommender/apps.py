"""App configuration for the recommender."""

from django.apps import AppConfig
from django.db import transaction

from movies import events
from recommender import checks  # noqa: F401  (registers the system checks)


class RecommenderConfig(AppConfig):
    name = "recommender"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from recommender import impressions  # imports models: likewise
        from recommender.runs import note_data_changed  # imports models: apps are not ready at import time
        from recommender.vectors import note_movie_changed, note_movies_deleted  # imports models: likewise

        # The catalogue's news and what the recommender does about it (movies.events says why events).
        def on_ratings_changed(num_changes: int, **_: object) -> None:
            note_data_changed(num_changes)

        def on_movie_saved(movie_id: int, **_: object) -> None:
            note_movie_changed(movie_id)

        def on_movies_deleted(movie_ids: list[int], **_: object) -> None:
            note_movies_deleted(movie_ids)

        def on_person_acted(user_id: int, movie_id: int, action: str, **_: object) -> None:
            # Logged once the change commits: a rating rolled back was never given.
            transaction.on_commit(lambda: impressions.note_action(user_id, movie_id, action))

        events.ratings_changed.connect(on_ratings_changed, weak=False, dispatch_uid="recommender")
        events.person_acted.connect(on_person_acted, weak=False, dispatch_uid="recommender")
        events.movie_saved.connect(on_movie_saved, weak=False, dispatch_uid="recommender")
        events.movies_deleted.connect(on_movies_deleted, weak=False, dispatch_uid="recommender")

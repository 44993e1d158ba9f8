"""The catalogue's news: what changed among ratings and movies, for whoever must act on it.

The catalogue sits below the recommender and never imports it. When a change has a consequence there (a
rating marks the data stale, a saved movie needs a vector, a deleted one must leave Milvus), the service that
made the change sends one of these events inside its transaction, and the recommender's receivers
(recommender.apps) do their part in the same transaction: so the change and its consequence commit together
or not at all, with no table or poller between them. An event nobody receives is a lost consequence, never
silent: `send` raises.

Each event says what happened, never what to do about it."""

from django.dispatch import Signal

ratings_changed = Signal()  # num_changes: int; ratings added, changed or removed (one send for a whole import)
movie_saved = Signal()  # movie_id: int; a movie added or edited in admin
movies_deleted = Signal()  # movie_ids: list[int]; movies deleted (their rows are gone)
person_acted = Signal()  # user_id: int, movie_id: int, action: "rating" or "hidden"; one person, on one movie


class LostConsequence(RuntimeError):
    """An event was sent with no receiver: the app that acts on it is not installed or not ready."""


def send(event: Signal, **details: object) -> None:
    if not event.has_listeners():
        raise LostConsequence(f"no receiver for {event!r} ({details}); is the recommender app installed?")
    event.send(sender=None, **details)

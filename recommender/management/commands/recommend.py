"""manage.py recommend: the same recommendations the site shows, one JSON object per user and line."""

import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet

from recommender.serving import recommend_movies_for


class Command(BaseCommand):
    help = "Print recommendations for users (database ids), one JSON line each: movie ids, scores and reasons."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("user_ids", nargs="*", type=int, help="User ids (the site's, not MovieLens')")
        parser.add_argument("--all", action="store_true", help="every user who has rated something")
        parser.add_argument("--k", type=int, default=10, help="recommendations per user (default 10)")

    def handle(self, *args: Any, **options: Any) -> None:
        users: QuerySet[User] | list[User]  # the ids given are listed in their order
        users = get_user_model().objects.select_related("profile")
        if options["all"]:
            users = users.filter(ratings__isnull=False).distinct().order_by("id")
        elif options["user_ids"]:
            found = users.filter(id__in=options["user_ids"]).in_bulk()
            missing = [i for i in options["user_ids"] if i not in found]
            if missing:
                raise CommandError(f"no user with id {', '.join(map(str, missing))}")
            users = [found[i] for i in options["user_ids"]]
        else:
            raise CommandError("give one or more USER_IDs, or --all")
        if not 1 <= options["k"] <= 500:
            raise CommandError("--k must be between 1 and 500")
        for user in users.iterator() if hasattr(users, "iterator") else users:
            result = recommend_movies_for(user, options["k"])
            profile = getattr(user, "profile", None)
            self.stdout.write(
                json.dumps(
                    {
                        "user_id": user.id,
                        "movielens_user_id": profile.movielens_user_id if profile else None,
                        "source": result.source,
                        "recommendations": [
                            {
                                "movie_id": item.movie.id,
                                "movielens_id": item.movie.movielens_id,
                                "score": round(item.score, 6),
                                "because": item.because,
                            }
                            for item in result.items
                        ],
                    },
                    ensure_ascii=False,
                )
            )

"""Load for bench/load: people browse, search, open movies and their recommendations, and rate.

Run by bench/load_bench.py in locust's own virtualenv (it does not import Django). LOAD_USERS_FILE names a JSON
file of {"users": [[username, session key, CSRF secret], ...], "movie_ids": [...], "queries": [...]}."""

import itertools
import json
import os
import random

from locust import HttpUser, between, events, task

PLAN = json.loads(open(os.environ["LOAD_USERS_FILE"]).read())
_accounts = itertools.cycle(PLAN["users"])
server_errors = []


@events.request.add_listener
def count_server_errors(request_type: str, name: str, response: object, exception: object, **kwargs: object) -> None:
    if response is not None and response.status_code >= 500:
        server_errors.append({"name": name, "status": response.status_code})


@events.quitting.add_listener
def save_server_errors(environment: object, **kwargs: object) -> None:
    with open(os.environ["LOAD_ERRORS_FILE"], "w") as out:
        json.dump(server_errors, out)


class Visitor(HttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.username, session_key, self.csrf_secret = next(_accounts)
        self.client.cookies.set("sessionid", session_key)
        self.client.cookies.set("csrftoken", self.csrf_secret)
        # Each visitor rates movies it has not rated before, so every accepted rating must be a new row.
        self.unrated = random.sample(PLAN["movie_ids"], len(PLAN["movie_ids"]))

    @task(3)
    def home(self) -> None:
        self.client.get("/", name="home")

    @task(2)
    def search(self) -> None:
        self.client.get("/movies/", params={"q": random.choice(PLAN["queries"])}, name="search")

    @task(4)
    def movie(self) -> None:
        self.client.get(f"/movies/{random.choice(PLAN['movie_ids'])}/", name="movie detail")

    @task(3)
    def for_you(self) -> None:
        self.client.get("/for-you/", name="for you")

    @task(3)
    def rate(self) -> None:
        if not self.unrated:
            return
        movie_id = self.unrated.pop()
        stars = random.choice(["2", "3", "3.5", "4", "4.5", "5"])
        with self.client.post(
            f"/movies/{movie_id}/rate/",
            {"stars": stars},
            name="rate",
            headers={
                "X-CSRFToken": self.csrf_secret,
                "HX-Request": "true",
                "Referer": f"{self.host}/movies/{movie_id}/",
            },
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"rating not saved: {response.status_code}")

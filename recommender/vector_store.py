"""The only module that talks to Milvus: one collection per training run, served through an alias."""

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar, cast

import grpc
import numpy as np
from pymilvus import DataType, MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.milvus_client import IndexParams

logger = logging.getLogger(__name__)
ALIAS = "movies"
PRIMARY = "movie_id"
RUN_TAG = "run_id"
MAX_GENRES = 32
NEIGHBORS = 100  # each movie's nearest movies, stored with it at publish: a page reads them instead of searching
INDEX = {"index_type": "HNSW", "metric_type": "IP", "params": {"M": 16, "efConstruction": 200}}
SEARCH_PARAMS = {"metric_type": "IP", "params": {"ef": 128}}
_SAFE_GENRE = re.compile(r"^[\w' &/.-]{1,64}$", re.UNICODE)
# pymilvus pings every 10 s even when idle; milvus-lite's gRPC server answers that with GOAWAY "Too many pings"
# and the channel is dead for the web process's next page. Ping only while calls are in flight, and rarely.
GRPC_OPTIONS = {"grpc.keepalive_time_ms": 60_000, "grpc.keepalive_permit_without_calls": False}
_T = TypeVar("_T")


class VectorStoreUnavailable(Exception):
    """Milvus could not be reached, timed out, or refused a call."""


class CollectionReleased(VectorStoreUnavailable):
    """The server answered, but the collection is not loaded (every collection is released by a restart)."""


class PublishFailed(Exception):
    """A new collection failed its checks; the alias still points where it did."""


@dataclass(frozen=True)
class Hit:
    movie_id: int
    score: float


@dataclass(frozen=True)
class MovieVectors:
    movie_ids: np.ndarray  # (n,) int64, Movie.id
    vectors: np.ndarray  # (n, dim) float32, L2-normalised
    years: np.ndarray  # (n,) int32, 0 where unknown
    genres: list[list[str]]
    neighbors: np.ndarray | None = None  # (n, <= NEIGHBORS) int64 movie ids, nearest first; None: not stored
    neighbor_scores: np.ndarray | None = None  # (n, <= NEIGHBORS) float32 inner products, the same order


def search_filter(genre: str | None = None, year_from: int | None = None, year_to: int | None = None) -> str:
    """A Milvus boolean expression; genres are checked against a strict pattern before use."""
    parts = []
    if genre:
        if not _SAFE_GENRE.match(genre):
            raise ValueError(f"not a genre name: {genre!r}")
        parts.append(f'array_contains(genres, "{genre}")')
    if year_from is not None:
        parts.append(f"year >= {int(year_from)}")
    if year_to is not None:
        parts.append(f"year <= {int(year_to)}")
    return " and ".join(parts)


PROBE_FIRST_S = 1.0  # the background probe's first wait after a failure; it doubles up to breaker_s


def _is_released(error: BaseException) -> bool:
    """Milvus's "collection not loaded" (code 101), worded differently by servers and milvus-lite."""
    text = str(error).lower()
    return "not loaded" in text or "load() before" in text or getattr(error, "code", None) == 101


def describe_error(error: BaseException) -> str:
    """What went wrong in a line staff can read: Milvus's own message or gRPC's status, not the repr."""
    raw_code = getattr(error, "code", None)  # an int on pymilvus's errors, a method on gRPC's
    if raw_code == 2 and not callable(raw_code):  # pymilvus's words for down or hung alike
        return "cannot reach the server (down, restarting or not answering)"
    details = getattr(error, "details", None)
    text = getattr(error, "message", None) or (details() if callable(details) else None) or str(error)
    code = raw_code() if callable(raw_code) else None
    if code is not None and hasattr(code, "name"):
        text = f"{code.name}: {text}"
    return " ".join(str(text).split())[:200]


READS = frozenset({"describe_alias", "get", "search", "describe_collection", "count", "load_collection"})


class VectorStore:
    def __init__(
        self,
        uri: str,
        token: str = "",
        timeout: float = 2.0,
        alias: str = ALIAS,
        breaker_s: float = 0.0,
        replicas: int = 1,
    ) -> None:
        self.uri = uri
        # In-memory replicas of each loaded collection, spread over a cluster's query nodes (searches scale
        # with them); 1 on milvus-lite and a standalone server, which have one query node.
        self.replicas = replicas
        self.token = token
        self.timeout = timeout
        self.alias = alias  # also names the run collections, so deployments sharing a Milvus stay apart
        # After a failure, reads fail at once for this long instead of each waiting out the timeout (a hung
        # Milvus would otherwise cost every page `timeout`); then one read tries again. Writes always try.
        self.breaker_s = breaker_s
        self._open_until = 0.0
        self._failure = ""  # why reads fail at once, while the breaker is open
        self._prober: threading.Thread | None = None
        # Collections other than the live one that a read found released (an experiment's challenger): the
        # probe loads them too, or every read of one would open the breaker again for every page.
        self._released: set[str] = set()
        self._lock = threading.Lock()
        self._client: MilvusClient | None = None
        self._fields: dict[str, frozenset[str]] = {}

    def collection_for_run(self, run_id: int) -> str:
        return f"{self.alias}_run{run_id}"

    def run_of_collection(self, name: str) -> int | None:
        prefix = f"{self.alias}_run"
        suffix = name[len(prefix) :]
        return int(suffix) if name.startswith(prefix) and suffix.isdigit() else None

    @contextmanager
    def _calls(self, what: str) -> Iterator[MilvusClient]:
        """Every Milvus or gRPC failure becomes VectorStoreUnavailable (shared/PITFALLS.md 5)."""
        now = time.monotonic()
        if what in READS and (now < self._open_until or self._probing()):
            raise VectorStoreUnavailable(
                f"Milvus at {self.uri} is failing ({self._failure}); reads fall back at once while it is "
                f"checked in the background ({what})"
            )
        try:
            if self._client is None:
                self._client = self._new_client()
            yield self._client
        except (MilvusException, grpc.RpcError, ConnectionError, OSError) as error:
            if _is_released(error):
                # The server answered: the collection is only released (after a restart). That is repaired by
                # loading it, not waited out, so it must not open the breaker that the load itself would meet.
                raise CollectionReleased(f"Milvus at {self.uri}: {what} found the collection released") from error
            self._forget_client()  # reconnect next time: the server may have restarted
            self._trip(f"{what}: {describe_error(error)}")
            raise VectorStoreUnavailable(f"Milvus at {self.uri} failed during {what}: {error}") from error
        if self._prober is None:
            self._open_until = 0.0

    def _new_client(self) -> MilvusClient:
        # dedicated: a broken channel is closed with this client, not handed back by pymilvus's pool
        return MilvusClient(
            uri=self.uri, token=self.token, timeout=self.timeout, dedicated=True, grpc_options=GRPC_OPTIONS
        )

    def _trip(self, reason: str) -> None:
        """Opens the breaker: reads fail at once, and one background thread (never a page) asks Milvus again
        until it answers and the live collection is loaded; then the breaker closes."""
        self._failure = reason
        if self.breaker_s <= 0:
            return
        self._open_until = time.monotonic() + self.breaker_s
        with self._lock:
            if self._prober is None or not self._prober.is_alive():
                self._prober = threading.Thread(target=self._probe_until_back, name="milvus-probe", daemon=True)
                self._prober.start()

    def _probe_until_back(self) -> None:
        wait = PROBE_FIRST_S
        while True:
            time.sleep(wait)
            try:
                self._probe()
            except Exception as error:  # any failure: still down; keep reads on the fallback meanwhile
                self._failure = f"still failing: {describe_error(error)}"
                self._open_until = time.monotonic() + self.breaker_s
                wait = min(wait * 2, self.breaker_s)
                continue
            with self._lock:
                self._prober = None
                self._failure = ""
                self._open_until = 0.0
            logger.info("Milvus at %s answers again; reads go back to it", self.uri)
            return

    def _probe(self) -> None:
        """Reaches the server on a fresh channel and loads the live collection, and any other a read found
        released, if a restart released them."""
        client = self._new_client()
        try:
            names = set(self._released)
            if self.alias in client.list_aliases(timeout=self.timeout).get("aliases", []):
                names.add(client.describe_alias(self.alias, timeout=self.timeout)["collection_name"])
            for name in sorted(names):
                if not client.has_collection(name, timeout=self.timeout):
                    continue  # dropped since (a stopped experiment's challenger): nothing to load
                state = client.get_load_state(name, timeout=self.timeout).get("state")
                if str(state).split(".")[-1] != "Loaded":
                    client.load_collection(name, timeout=max(self.timeout, 30), **self._load_options())
            self._released -= names
        finally:
            client.close()
        # Pages reconnect on a fresh channel too. Dropped, not closed: a write on another thread may still be
        # using it (writes do not wait for the breaker); it closes when that thread lets go.
        self._client = None

    def _probing(self) -> bool:
        """While the probe runs, reads wait for its answer, not for a window: a probe that waits out a hung
        server's timeout outlasts the window its last failure set, and a page must not try in that gap."""
        prober = self._prober
        return prober is not None and prober.is_alive()

    def failure(self) -> str:
        """Why reads fail at once now ("" when they go to Milvus)."""
        return self._failure if time.monotonic() < self._open_until or self._probing() else ""

    def _forget_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a dead channel may fail too; it is dropped either way
                logger.debug("closing the Milvus client failed", exc_info=True)

    # Reading ------------------------------------------------------------------------------------

    def live_collection(self) -> str | None:
        with self._calls("describe_alias") as client:
            if self.alias not in client.list_aliases(timeout=self.timeout).get("aliases", []):
                return None
            return client.describe_alias(self.alias, timeout=self.timeout)["collection_name"]

    def run_collections(self) -> list[str]:
        """Collections written for training runs, oldest run first."""
        with self._calls("list_collections") as client:
            names = [n for n in client.list_collections(timeout=self.timeout) if self.run_of_collection(n) is not None]
        return sorted(names, key=cast(Callable[[str], int], self.run_of_collection))  # never None: filtered above

    def ensure_loaded(self, collection: str | None = None) -> None:
        """After a server restart every collection is released; searching needs it loaded (PITFALLS 4)."""
        name = collection or self.live_collection()
        if name is None:
            return
        with self._calls("load_collection") as client:
            state = client.get_load_state(name, timeout=self.timeout).get("state")
            if str(state).split(".")[-1] != "Loaded":
                client.load_collection(name, timeout=max(self.timeout, 30), **self._load_options())

    def _load_options(self) -> dict:
        return {"replica_number": self.replicas} if self.replicas > 1 else {}

    def get_vectors(self, movie_ids: list[int], collection: str | None = None) -> dict[int, np.ndarray]:
        """Each movie's vector, from the live collection or the named one (an experiment's challenger)."""
        if not movie_ids:
            return {}
        rows = self._loaded_call(
            "get",
            lambda client: client.get(
                collection or self.alias, ids=list(movie_ids), output_fields=["vector"], timeout=self.timeout
            ),
            collection,
        )
        return {int(row[PRIMARY]): np.asarray(row["vector"], dtype=np.float32) for row in rows}

    def get_neighbors(
        self, movie_ids: list[int], collection: str | None = None
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """The stored nearest movies of each movie (ids, scores), nearest first; empty for a movie without them.
        From the live collection, or the named one (an experiment's challenger)."""
        if not movie_ids:
            return {}
        rows = self._loaded_call(
            "get",
            lambda client: client.get(
                collection or self.alias,
                ids=list(movie_ids),
                output_fields=["neighbors", "neighbor_scores"],
                timeout=self.timeout,
            ),
            collection,
        )
        return {
            int(row[PRIMARY]): (
                np.asarray(row["neighbors"], dtype=np.int64),
                np.asarray(row["neighbor_scores"], dtype=np.float32),
            )
            for row in rows
        }

    def has_neighbor_lists(self, collection: str) -> bool:
        """Whether a collection stores neighbour lists (those published before they existed do not)."""
        return "neighbors" in self.fields(collection)

    def fields(self, collection: str) -> frozenset[str]:
        """A collection's field names (older collections lack the later ones: lists, the run tag)."""
        if collection not in self._fields:
            with self._calls("describe_collection") as client:
                described = client.describe_collection(collection, timeout=self.timeout)["fields"]
            self._fields[collection] = frozenset(f["name"] for f in described)
        return self._fields[collection]

    def search(
        self, vectors: np.ndarray, limit: int, filter_expression: str = "", collection: str | None = None
    ) -> list[list[Hit]]:
        """Top `limit` movies by inner product for each query vector, in one batched call (the live collection's,
        or the named one's)."""
        if len(vectors) == 0:
            return []
        results = self._loaded_call(
            "search",
            lambda client: client.search(
                collection or self.alias,
                data=[v.tolist() for v in vectors],
                limit=min(limit, 16384),
                filter=filter_expression,
                search_params=SEARCH_PARAMS,
                anns_field="vector",
                timeout=self.timeout,
            ),
            collection,
        )
        return [[Hit(int(hit.get("id", hit.get(PRIMARY))), float(hit["distance"])) for hit in hits] for hits in results]

    def count(self, collection: str) -> int:
        with self._calls("count") as client:
            rows = client.query(
                collection, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=self.timeout
            )
        return int(rows[0]["count(*)"])

    def _loaded_call(self, what: str, call: Callable[[MilvusClient], _T], collection: str | None = None) -> _T:
        """Runs a read of `collection` (the live one when None). One that finds it released (a restart) hands
        the load to the background probe and fails at once, so a page falls back rather than waiting out a load
        (seconds, up to 30 s on a large collection); without a breaker (breaker_s 0) it loads here and tries
        once more."""
        try:
            with self._calls(what) as client:
                return call(client)
        except CollectionReleased:
            if collection is not None:
                self._released.add(collection)
            if self.breaker_s > 0:
                self._trip(f"{what}: the collection was released (a restart); it is being loaded")
                raise
            self.ensure_loaded(collection)
        with self._calls(what) as client:
            return call(client)

    # Writing ------------------------------------------------------------------------------------

    def publish(self, run_id: int, movies: MovieVectors, batch_size: int = 1000) -> str:
        """Write a run's collection, check it, then point the alias at it; the old one stays for rollback."""
        name = self.collection_for_run(run_id)
        live = self.live_collection()
        if name == live:
            if self.count(name) != len(movies.movie_ids):
                raise PublishFailed(f"{name} is live but holds a different set of vectors; use another MILVUS_ALIAS")
            return name  # already published: a retried task has nothing to do
        self._write(run_id, movies, batch_size)
        self.switch_alias(name)
        return name

    def stage(self, run_id: int, movies: MovieVectors, batch_size: int = 1000) -> str:
        """Write a run's collection and check it, leaving the alias where it is (an experiment's challenger,
        read by name beside the live one). A collection of the run that is complete already is kept."""
        name = self.collection_for_run(run_id)
        if name == self.live_collection():
            raise PublishFailed(f"{name} is live; a live run is not staged beside itself")
        with self._calls("has_collection") as client:
            exists = client.has_collection(name, timeout=self.timeout)
        if exists and "neighbors" in self.fields(name) and self.count(name) == len(movies.movie_ids):
            self.ensure_loaded(name)
            return name
        self._write(run_id, movies, batch_size)
        return name

    def _write(self, run_id: int, movies: MovieVectors, batch_size: int) -> None:
        name = self.collection_for_run(run_id)
        with self._calls("publish") as client:
            if client.has_collection(name, timeout=self.timeout):
                client.drop_collection(name, timeout=self.timeout)  # a half-written earlier attempt
            self._fields.pop(name, None)
            self._create(client, name, movies.vectors.shape[1])
            for start in range(0, len(movies.movie_ids), batch_size):
                rows = _rows(movies, slice(start, start + batch_size), run_id=run_id)
                client.upsert(name, rows, timeout=max(self.timeout, 30))
            client.flush(name, timeout=max(self.timeout, 60))
            client.create_index(name, _index_params(client), timeout=max(self.timeout, 60))
            client.load_collection(name, timeout=max(self.timeout, 60), **self._load_options())
        self._verify(name, movies)

    def _create(self, client: MilvusClient, name: str, dim: int) -> None:
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(PRIMARY, DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("year", DataType.INT32)
        # An ARRAY, since Milvus 2.3 servers only match LIKE patterns by prefix; array_contains works on lite and servers.
        schema.add_field(
            "genres", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_GENRES, max_length=64
        )
        schema.add_field("neighbors", DataType.ARRAY, element_type=DataType.INT64, max_capacity=NEIGHBORS)
        schema.add_field("neighbor_scores", DataType.ARRAY, element_type=DataType.FLOAT, max_capacity=NEIGHBORS)
        # The run whose model computed the row: a vector from another run's model would be in another space.
        schema.add_field(RUN_TAG, DataType.INT64)
        client.create_collection(name, schema=schema, consistency_level="Strong", timeout=max(self.timeout, 30))

    def _verify(self, name: str, movies: MovieVectors) -> None:
        count = self.count(name)
        if count != len(movies.movie_ids):
            raise PublishFailed(f"{name} holds {count} vectors, expected {len(movies.movie_ids)}")
        probe = movies.vectors[:1]
        with self._calls("probe search") as client:
            hits = client.search(
                name,
                data=probe.tolist(),
                limit=1,
                search_params=SEARCH_PARAMS,
                anns_field="vector",
                timeout=self.timeout,
            )
        if not hits or not hits[0]:
            raise PublishFailed(f"{name}: a probe search returned nothing")

    def switch_alias(self, collection: str) -> None:
        with self._calls("alias") as client:
            if self.alias in client.list_aliases(timeout=self.timeout).get("aliases", []):
                client.alter_alias(collection, self.alias, timeout=self.timeout)
            else:
                client.create_alias(collection, self.alias, timeout=self.timeout)

    def switch_to(self, collection: str) -> None:
        """Points the alias at an existing collection (a rollback, or staff making an older run live)."""
        self.ensure_loaded(collection)
        self.switch_alias(collection)

    def drop_old_collections(self, keep_runs: set[int]) -> list[str]:
        """Drops every run collection but those of `keep_runs` and the one the alias points to, which is never
        dropped (a Milvus server >= 2.5.5 refuses; lite would silently remove the alias)."""
        live = self.live_collection()
        doomed = [n for n in self.run_collections() if n != live and self.run_of_collection(n) not in keep_runs]
        with self._calls("drop_collection") as client:
            for name in doomed:
                client.drop_collection(name, timeout=max(self.timeout, 30))
                self._fields.pop(name, None)
        return doomed

    def drop_collection(self, name: str) -> None:
        if name == self.live_collection():
            raise PublishFailed(f"refusing to drop {name}: the alias {self.alias!r} points to it")
        with self._calls("drop_collection") as client:
            client.drop_collection(name, timeout=max(self.timeout, 30))
        self._fields.pop(name, None)

    def upsert_movies(self, run_id: int, movies: MovieVectors) -> None:
        """Adds or replaces single movies in run `run_id`'s own collection, never through the alias: the vectors
        come from that run's model, and the alias may have moved to another run since they were computed."""
        name = self.collection_for_run(run_id)
        fields = self.fields(name)
        rows = _rows(
            movies, slice(None), with_lists="neighbors" in fields, run_id=run_id if RUN_TAG in fields else None
        )
        with self._calls("upsert") as client:
            client.upsert(name, rows, timeout=self.timeout)

    def delete_movies(self, movie_ids: list[int], collection: str | None = None) -> None:
        with self._calls("delete") as client:
            client.delete(collection or self.alias, ids=list(movie_ids), timeout=self.timeout)


def _index_params(client: MilvusClient) -> IndexParams:
    params = client.prepare_index_params()
    params.add_index(field_name="vector", **INDEX)
    return params


def _rows(movies: MovieVectors, part: slice, with_lists: bool = True, run_id: int | None = None) -> list[dict]:
    """Rows to write; `with_lists` False and `run_id` None for collections published before those fields."""
    ids = movies.movie_ids[part]
    none: list[list[float]] = [[]] * len(ids)
    neighbors = none if movies.neighbors is None else movies.neighbors[part][:, :NEIGHBORS].tolist()
    scores = none if movies.neighbor_scores is None else movies.neighbor_scores[part][:, :NEIGHBORS].tolist()
    rows = []
    for movie_id, vector, year, genres, near, near_scores in zip(
        ids, movies.vectors[part], movies.years[part], movies.genres[part], neighbors, scores
    ):
        row = {
            PRIMARY: int(movie_id),
            "vector": vector.tolist(),
            "year": int(year),
            "genres": [g[:64] for g in genres][:MAX_GENRES],
        }
        if with_lists:
            row.update(neighbors=near, neighbor_scores=near_scores)
        if run_id is not None:
            row[RUN_TAG] = int(run_id)
        rows.append(row)
    return rows

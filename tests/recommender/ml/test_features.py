"""recommender/ml/features.py: a movie's title, year, genre and tag features."""


def test_tags_join_the_title_tokens_only_when_asked() -> None:
    from recommender.ml.features import PAD, UNKNOWN, build_movie_features

    titles, years, genres = ["Twelve Monkeys (1995)", "Looper (2012)"], [1995, 2012], [["Sci-Fi"], ["Sci-Fi"]]
    tags = [["time travel", "Bruce Willis"], ["Time  Travel"]]
    plain = build_movie_features(titles, years, genres, min_token_count=1)
    tagged = build_movie_features(titles, years, genres, min_token_count=1, tags=tags)
    assert "#time travel" not in plain.vocabulary and "#time travel" in tagged.vocabulary
    code = tagged.vocabulary.index("#time travel") + 2
    assert (tagged.title_tokens[0] == code).sum() == 1 and (tagged.title_tokens[1] == code).sum() == 1
    # A vocabulary trained with tags featurises a new movie's tags the same way; unseen ones are UNKNOWN.
    new = build_movie_features(
        ["Primer (2004)"], [2004], [["Sci-Fi"]], vocabulary=tagged.vocabulary, tags=[["time travel", "low budget"]]
    )
    row = new.title_tokens[0].tolist()
    assert code in row and UNKNOWN in row and row.count(PAD) == len(row) - 3

"""The web layer: pages and the JSON API, composing the catalogue (movies) and the recommender."""

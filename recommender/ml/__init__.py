"""The recommender's machine learning: arrays in, arrays and dataclasses out; nothing here imports Django."""

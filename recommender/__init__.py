"""PinSage training, evaluation and serving of movie recommendations."""

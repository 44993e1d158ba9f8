"""Movies, people's profiles and their ratings."""

"""movies/titles.py: MovieLens's stored titles as people write them."""

import pytest

from movies.titles import natural_title

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "stored, natural",
    [
        ("Matrix, The (1999)", "The Matrix (1999)"),
        ("Shawshank Redemption, The (1994)", "The Shawshank Redemption (1994)"),
        (
            "Lord of the Rings: The Fellowship of the Ring, The (2001)",
            "The Lord of the Rings: The Fellowship of the Ring (2001)",
        ),
        (
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
            "The City of Lost Children (La Cité des enfants perdus) (1995)",
        ),
        (
            "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
            "The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo) (1966)",
        ),
        ("Atalante, L' (1934)", "L'Atalante (1934)"),
        ("Boot, Das (1981)", "Das Boot (1981)"),
        ("Misérables, Les (1995)", "Les Misérables (1995)"),
        ("Tale of Two Cities, A (1935)", "A Tale of Two Cities (1935)"),
        ("Postman, The (Postino, Il) (1994)", "The Postman (Il Postino) (1994)"),
        ("Seven (a.k.a. Se7en) (1995)", "Seven (a.k.a. Se7en) (1995)"),
        (
            "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)",
            "Crouching Tiger, Hidden Dragon (Wo hu cang long) (2000)",
        ),
        ("(500) Days of Summer (2009)", "(500) Days of Summer (2009)"),
        ("Babylon 5", "Babylon 5"),
    ],
)
def test_natural_title_moves_the_trailing_article_to_the_front(stored: str, natural: str) -> None:
    assert natural_title(stored) == natural

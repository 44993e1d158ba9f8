"""A person in a real headless Chromium: sign up, onboard, rate with the widget, get explained picks.
Cross-cutting: the whole site end to end, templates and JavaScript included."""

import shutil

import pytest

from tests.conftest import requires_milvus
from tests.recommender import conftest as recommender_fixtures

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
trained_runs = recommender_fixtures.trained_runs  # runs trained on tiny ratings, for the experiment
pytestmark = [pytest.mark.browser, requires_milvus, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> object:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread; the test's own database calls are
    # still synchronous, which is what Django's guard is unsure of (pytest-playwright's documented setting).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


def test_new_user_signs_up_rates_and_sees_explained_picks(
    live_server, browser, alice, live_embeddings, catalogue_movies
) -> None:
    page = browser.new_page()
    page.goto(f"{live_server.url}/signup/")
    page.fill("#id_username", "dana")
    page.fill("#id_password1", "Stars-and-Popcorn-77")
    page.fill("#id_password2", "Stars-and-Popcorn-77")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/for-you/")
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    assert "Rate a few movies you know" in page.content()

    first_card = page.locator(".onboarding .card").first
    title = first_card.locator(".card-title").inner_text()
    with page.expect_response(lambda r: "/rate/" in r.url and r.request.method == "POST") as posted:
        first_card.locator("label[title='5.0 stars']").click()
    assert posted.value.status == 200  # the htmx POST carried the CSRF header and was accepted
    first_card.locator(".status").get_by_text("Saved: 5 stars.").wait_for()
    page.locator("#recommendations .because", has_text="Because you liked").first.wait_for()
    picks = page.locator("#recommendations .card-title").all_inner_texts()
    assert picks and title not in picks
    assert page.url == f"{live_server.url}/for-you/", "rating must not reload the page"


def test_rating_by_keyboard_announces_the_result(live_server, browser, bob, live_embeddings, catalogue_movies) -> None:
    page = browser.new_page()
    page.goto(f"{live_server.url}/login/?next=/movies/{catalogue_movies[0].id}/")
    page.fill("#id_username", "bob")
    page.fill("#id_password", "a-long-password-2")
    page.press("#id_password", "Enter")
    page.wait_for_url(f"**/movies/{catalogue_movies[0].id}/")
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    # Counts htmx's settled swaps: until the new form has settled, its change trigger may not be bound yet.
    page.evaluate(
        "() => { window.settled = 0; document.body.addEventListener('htmx:afterSettle', () => window.settled++); }"
    )
    page.locator("input[name=stars]").first.focus()
    page.keyboard.press("ArrowRight")
    page.locator("form.stars [role=status]").get_by_text("Saved: 1 star.").wait_for()
    page.wait_for_function("() => window.settled >= 1")
    # htmx puts focus back on the same star in the new form once the swap settles. Until then the focused
    # star may still be the old form's, detached: a key pressed there is lost (the race this wait closes).
    page.wait_for_function("""() => {
        const star = document.activeElement;
        const form = star && star.isConnected && star.closest('form.stars');
        return !!form && star.id.startsWith('stars-') && form.textContent.includes('Saved: 1 star.');
    }""")
    page.keyboard.press("ArrowRight")
    status = page.locator("form.stars [role=status]")
    status.get_by_text("Saved: 1.5 stars.").wait_for()
    assert page.locator("form.stars input[value='1.5']").is_checked()
    assert page.evaluate("() => document.activeElement.name") == "stars", "focus stays in the widget after saving"
    outline = page.evaluate("() => getComputedStyle(document.activeElement.nextElementSibling).outlineStyle")
    assert outline != "none", "the focused star shows a visible focus ring"


def serious_violations(page: object) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one readable line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert len(results.response["passes"]) > 10, "axe-core did not run its rules on the page"
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in {"serious", "critical"}
    ]


def test_main_pages_have_no_serious_accessibility_violations(
    live_server, browser, alice, live_embeddings, catalogue_movies
) -> None:
    # axe-core is injected by the checker, so only its page evaluation bypasses the CSP; the site's is unchanged.
    page = browser.new_context(bypass_csp=True).new_page()
    found = {}
    for name, path in (("login", "/login/"), ("home", "/"), ("detail", f"/movies/{catalogue_movies[0].id}/")):
        page.goto(f"{live_server.url}{path}")
        found[name] = serious_violations(page)
    page.goto(f"{live_server.url}/login/?next=/for-you/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "a-long-password-1")
    page.press("#id_password", "Enter")
    page.wait_for_url("**/for-you/")
    page.locator("#recommendations .card-title").first.wait_for()
    found["for you"] = serious_violations(page)
    page.goto(f"{live_server.url}/movies/{catalogue_movies[1].id}/")
    found["detail, signed in"] = serious_violations(page)
    assert not any(found.values()), found


def test_header_search_suggests_as_you_type_and_works_by_keyboard(
    live_server, browser, alice, catalogue_movies
) -> None:
    page = browser.new_context(bypass_csp=True).new_page()
    page.goto(f"{live_server.url}/")
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    box = page.locator("#site-search")
    box.focus()
    page.keyboard.type("robot gardn", delay=30)  # a typo, typed as a person would
    page.locator("#site-suggestions [role=option]").first.wait_for()
    assert box.get_attribute("aria-expanded") == "true"
    options = page.locator("#site-suggestions [role=option]")
    assert options.count() >= 3 and all("Robot Garden" in t for t in options.all_inner_texts())
    page.get_by_role("status").filter(has_text="suggestions").wait_for()
    assert not serious_violations(page), "the open combobox must stay accessible"
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    second = options.nth(1)
    assert second.get_attribute("aria-selected") == "true"
    assert box.get_attribute("aria-activedescendant") == second.get_attribute("id")
    page.keyboard.press("ArrowUp")
    assert options.nth(0).get_attribute("aria-selected") == "true"
    page.keyboard.press("Escape")
    assert box.get_attribute("aria-expanded") == "false"
    page.keyboard.press("ArrowDown")
    chosen = options.nth(0).inner_text()
    page.keyboard.press("Enter")
    page.wait_for_url("**/movies/*/")
    assert page.locator("h1").inner_text() in chosen
    page.goto(f"{live_server.url}/")
    page.locator("#site-search").fill("garden robot")
    page.keyboard.press("Enter")  # no suggestion chosen: the full results page
    page.wait_for_url("**/movies/?q=garden+robot")
    assert page.locator(".cards .card-title").count() == 11


def _log_in(page: object, base_url: str, username: str, password: str, next_path: str) -> None:
    page.goto(f"{base_url}/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.press("#id_password", "Enter")
    page.wait_for_url(f"**{next_path}")


NAV_ROWS = """() => {
    const boxes = [...document.querySelectorAll('.site-header nav > *')].map(e => e.getBoundingClientRect());
    return {
        gaps: boxes.slice(1).flatMap((b, i) => Math.abs(b.top - boxes[i].top) < 2 ? [b.left - boxes[i].right] : []),
        lines: [...document.querySelectorAll('.site-header nav a')].map(a => a.getClientRects().length),
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        search: document.querySelector('#site-search').getBoundingClientRect().width,
    };
}"""


@pytest.mark.parametrize("width", [320, 480, 768, 1280])
def test_header_links_keep_apart_at_every_width(live_server, browser, width: int) -> None:
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("staff", password="a-long-password-3", is_staff=True)
    page = browser.new_page(viewport={"width": width, "height": 700})
    _log_in(page, live_server.url, "staff", "a-long-password-3", "/")  # the most links the header shows
    header = page.evaluate(NAV_ROWS)
    assert header["gaps"] and min(header["gaps"]) >= 12, header
    assert header["lines"] == [1] * 4 and header["overflow"] <= 0, header  # no link broken over two lines
    assert header["search"] >= 200, header


def test_a_rating_over_the_limit_says_so_in_the_widget(live_server, browser, bob, catalogue_movies, settings) -> None:
    settings.RATING_LIMIT_PER_USER = 1
    page = browser.new_page()
    movie = catalogue_movies[0]
    _log_in(page, live_server.url, "bob", "a-long-password-2", f"/movies/{movie.id}/")
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    for stars, status in (("4.0", 200), ("2.0", 429)):
        with page.expect_response(lambda r: "/rate/" in r.url and r.request.method == "POST") as posted:
            page.locator(f"form.stars label[title='{stars} stars']").click()
        assert posted.value.status == status
    page.locator("form.stars .status").get_by_text("Too many ratings in a short time").wait_for()
    assert page.locator("form.stars input[value='4.0']").is_checked(), "the widget shows the rating that is saved"


def _figures(page: object) -> dict[str, list[int]]:
    """The experiment page's table: per row, (live, challenger)."""
    rows = page.locator(".field-figures table tr").all()[1:]
    return {r.locator("th").inner_text(): [int(c) for c in r.locator("td").all_inner_texts()] for r in rows}


def test_staff_run_an_experiment_end_to_end_and_make_the_winner_live(
    live_server, browser, store, trained_runs, settings, monkeypatch, tmp_path
) -> None:
    """Start it in the admin, a person clicks interleaved picks, the counts grow, stop it, make the challenger
    live. The impression log runs as in production (its writer thread); tasks run in the server's process."""
    from django.contrib.auth import get_user_model

    from recommender import outbox, runs, tasks
    from recommender.models import Experiment

    settings.IMPRESSION_FLUSH_MS = 200
    monkeypatch.setattr(outbox, "send", lambda name, *args, **_: getattr(tasks, name.rpartition(".")[2])(*args) or True)
    from movies.models import Movie

    for movie in Movie.objects.all():  # the tiny ratings' movies were bulk-created: their shown titles too
        movie.save()
    live, _, challenger = trained_runs
    runs.publish(live.id)
    get_user_model().objects.create_superuser("boss", password="a-long-password-4")
    person = get_user_model().objects.get(username="u0")  # rated eight of the tiny catalogue's movies
    person.set_password("a-long-password-5")
    person.save()

    staff = browser.new_context().new_page()
    _log_in(staff, live_server.url, "boss", "a-long-password-4", "/admin/recommender/experiment/add/")
    staff.select_option("#id_challenger", str(challenger.id))
    staff.fill("#id_share_percent", "100")
    staff.click("input[type=submit]")
    staff.get_by_text("Experiment started").wait_for()
    experiment = Experiment.objects.get()
    assert experiment.status == Experiment.Status.RUNNING
    assert _figures(staff)["credited clicks"] == [0, 0]

    viewer = browser.new_context().new_page()
    _log_in(viewer, live_server.url, "u0", "a-long-password-5", "/for-you/")
    for n in range(3):  # three picks opened from the list
        viewer.locator("#recommendations .card-title a").nth(n).click()
        viewer.wait_for_url("**/movies/*/?from=*")
        viewer.go_back()
        viewer.wait_for_url("**/for-you/")
    for _ in range(50):  # the log is written off the request path, within a second or so
        staff.reload()
        if sum(_figures(staff)["credited clicks"]) == 3:
            break
        staff.wait_for_timeout(200)
    assert sum(_figures(staff)["credited clicks"]) == 3
    assert "from 1 person" in staff.locator(".field-figures").inner_text()

    staff.get_by_role("button", name="Stop").click()
    staff.get_by_text("Stopped; pages serve the live run alone.").wait_for()
    staff.get_by_role("button", name="Make the challenger live").click()
    staff.get_by_text(f"run {challenger.id} is being made live").wait_for()
    assert runs.live_run_id() == challenger.id
    viewer.goto(f"{live_server.url}/for-you/")
    assert viewer.locator("#recommendations .card-title").count() > 0


def test_not_interested_hides_a_pick_at_once_with_an_undo_and_the_hidden_page_lets_it_back(
    live_server, browser, alice, live_embeddings, catalogue_movies
) -> None:
    page = browser.new_page()
    _log_in(page, live_server.url, "alice", "a-long-password-1", "/for-you/")
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")
    first = page.locator("#recommendations .card").first
    title = first.locator(".card-title").inner_text()
    with page.expect_response(lambda r: "/hide/" in r.url and r.request.method == "POST") as posted:
        first.get_by_role("button", name=f"Not interested in {title}").click()
    assert posted.value.status == 200
    hidden = page.locator("#recommendations .hidden-card")
    hidden.get_by_text(f"Hidden: {title}.").wait_for()
    assert page.url == f"{live_server.url}/for-you/", "hiding must not reload the page"
    hidden.get_by_role("button", name="Undo").click()
    page.locator("#recommendations .card-title", has_text=title).wait_for()
    assert page.locator("#recommendations .hidden-card").count() == 0

    page.locator("#recommendations .card").first.get_by_role("button", name=f"Not interested in {title}").click()
    page.locator("#recommendations .hidden-card").wait_for()
    page.goto(f"{live_server.url}/for-you/")
    assert title not in page.locator("#recommendations").inner_text()  # gone from the list itself
    page.goto(f"{live_server.url}/hidden/")
    assert page.locator(".card-title").all_inner_texts() == [title]
    page.get_by_role("button", name="Show it again").click()
    page.get_by_text("You have not hidden any movie.").wait_for()
    page.goto(f"{live_server.url}/for-you/")
    assert title in page.locator("#recommendations").inner_text()

"""The web console in a real browser, one user's session from sign-in to delete: a bad
token and an over-size image show EasyAR's messages; adds run the similar check first and
a look-alike is refused; a photo's matched target is outlined on its corners; a hostile
name shows as text; deactivate and delete reach the library."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from local.serve import DEMO_PHOTOS, console_token
from tests.browser.conftest import ARTIFACTS
from tests.integration.test_concurrency import similar_names

pytestmark = pytest.mark.integration

# At most 64 characters, a name's limit.
HOSTILE = '<img src=x onerror="document.title=1"><script>x()</script>'


class Console:
    """The page as its user sees it, with a screenshot after each step."""

    def __init__(self, driver, api: str) -> None:
        self.driver = driver
        self.api = api
        self.shots = 0

    def find(self, css: str):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, condition, timeout: float = 60):
        # A list the page re-renders meanwhile leaves stale elements: look again.
        waiting = WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=[StaleElementReferenceException],
        )
        return waiting.until(lambda _: condition())

    def text(self, css: str) -> str:
        return self.find(css).text

    def shot(self, step: str) -> None:
        self.shots += 1
        self.driver.save_screenshot(str(ARTIFACTS / f"{self.shots:02d}-{step}.png"))

    def message(self, starting: str) -> str:
        """The page's message once it starts with ``starting`` (the last action's)."""

        def shown() -> str | None:
            box = self.find("#message")
            return box.text if box.is_displayed() and box.text.startswith(starting) else None

        return self.wait(shown)

    def names(self) -> list[str]:
        """The cards' names as the page holds them (read at once, as text)."""
        script = (
            "return [...document.querySelectorAll('#targets li .name')].map(e => e.textContent)"
        )
        return sorted(self.driver.execute_script(script))

    def card(self, name: str):
        [card] = [
            c for c in self.all("#targets li") if c.find_element(By.CLASS_NAME, "name").text == name
        ]
        return card


@pytest.fixture(scope="module")
def console(browser, api) -> Console:
    return Console(browser, api)


def jpeg_file(tmp_path: Path, name: str, image: np.ndarray, quality: int = 90) -> Path:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    path = tmp_path / name
    path.write_bytes(data.tobytes())
    return path


def drop_file(console: Console, path: Path) -> None:
    """Drop a file on the drop zone as a user dragging it from their desktop would."""
    console.driver.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], arguments[1], { type: "image/jpeg" }));
        const zone = document.getElementById("drop");
        for (const type of ["dragover", "drop"])
          zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true }));
        """,
        base64.b64encode(path.read_bytes()).decode(),
        path.name,
    )


def test_a_bad_token_is_refused_with_its_message(console: Console) -> None:
    console.driver.get(f"{console.api}/console")
    assert console.driver.title == "opencrs console"
    console.find("#token").send_keys("not-a-token")
    console.find("#sign-in-button").click()
    assert console.message("statusCode") == "statusCode 6: token is malformed"
    assert not console.find("#console").is_displayed()
    console.shot("bad-token")


def test_sign_in_and_add_targets(console: Console) -> None:
    token = console.find("#token")
    token.clear()
    token.send_keys(console_token(os.environ))
    console.find("#sign-in-button").click()
    console.wait(lambda: console.find("#console").is_displayed())
    assert console.text("#library") == "library default"
    console.shot("signed-in")
    files = [str(DEMO_PHOTOS / f"{name}.jpg") for name in ("coffee", "rocket")]
    console.find("#files").send_keys("\n".join(files))
    console.wait(lambda: console.text("#add-status") == "2 of 2 added")
    console.wait(lambda: console.names() == ["coffee", "rocket"])
    assert console.text("#count") == "(2 targets)"
    console.wait(lambda: all(i.get_attribute("src") for i in console.all("#targets img")))
    console.shot("added")


def test_a_look_alike_is_shown_before_anything_is_created(console: Console, tmp_path) -> None:
    copy = jpeg_file(tmp_path, "coffee-copy.jpg", cv2.imread(str(DEMO_PHOTOS / "coffee.jpg")), 70)
    drop_file(console, copy)
    console.wait(lambda: console.find("#look-alikes").is_displayed())
    assert "coffee-copy.jpg looks like 1 target" in console.text("#look-alikes-title")
    assert [e.text for e in console.all("#look-alikes-list .name")] == ["coffee"]
    console.shot("look-alikes")
    console.find("#skip").click()
    console.wait(lambda: console.text("#add-status") == "0 of 1 added")
    assert console.names() == ["coffee", "rocket"]


def test_a_photo_is_outlined_where_it_shows_the_target(console: Console, tmp_path) -> None:
    target = cv2.imread(str(DEMO_PHOTOS / "rocket.jpg"))
    h, w = target.shape[:2]
    placed = np.float32([[220, 140], [860, 190], [820, 700], [180, 640]])
    warp = cv2.getPerspectiveTransform(np.float32([[0, 0], [w, 0], [w, h], [0, h]]), placed)
    scene = cv2.resize(cv2.imread(str(DEMO_PHOTOS / "coins.jpg")), (1100, 850))
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), warp, (1100, 850)) > 0
    scene[mask] = cv2.warpPerspective(target, warp, (1100, 850))[mask]
    console.find("#try-file").send_keys(str(jpeg_file(tmp_path, "scene.jpg", scene)))
    console.wait(lambda: console.text("#try-status") == "1 target(s) found")
    [result] = console.all("#try-results li")
    assert result.text.startswith("rocket — score ")
    corners = np.array(json.loads(result.get_attribute("data-corners")))
    assert np.abs(corners - placed).max() < 6
    # The outline is drawn on the photo: the canvas is red on the top edge's midpoint.
    x, y = (placed[0] + placed[1]) / 2
    pixel = console.driver.execute_script(
        "return Array.from(document.getElementById('try-canvas').getContext('2d')"
        ".getImageData(arguments[0], arguments[1], 1, 1).data)",
        int(x),
        int(y),
    )
    assert pixel[0] > 180 and pixel[1] < 90 and pixel[2] < 90, pixel
    console.shot("try-a-photo")


def test_a_hostile_name_shows_as_text(console: Console, stack) -> None:
    console.card("rocket").find_element(By.CSS_SELECTOR, "[data-action=edit]").click()
    name = console.find("#edit-name")
    name.clear()
    name.send_keys(HOSTILE)
    console.find("#edit-save").click()
    console.wait(lambda: HOSTILE in console.names())
    assert console.driver.title == "opencrs console"  # neither handler ran
    assert not console.all("#targets script") and not console.all("#targets img[src=x]")
    console.shot("hostile-name")


def test_deactivate_and_delete(console: Console, stack) -> None:
    console.card("coffee").find_element(By.CSS_SELECTOR, "[data-action=active]").click()
    assert console.message("Deactivated") == "Deactivated coffee"
    assert similar_names(stack, "coffee") == []
    console.shot("deactivated")
    console.card(HOSTILE).find_element(By.CSS_SELECTOR, "[data-action=delete]").click()
    alert = console.wait(lambda: _alert(console))
    assert "cannot be undone" in alert.text
    alert.accept()
    console.wait(lambda: console.names() == ["coffee"])
    assert console.text("#count") == "(1 targets)"
    assert similar_names(stack, "rocket") == []
    console.shot("deleted")


def test_an_over_size_image_shows_its_message(console: Console, tmp_path) -> None:
    noise = np.random.default_rng(1).integers(0, 256, (1300, 1500, 3), dtype=np.uint8)
    big = jpeg_file(tmp_path, "huge.jpg", noise, 95)  # ~2.2 MB: over EasyAR's 2 MB
    assert big.stat().st_size > 2 * 1024 * 1024
    console.find("#files").send_keys(str(big))
    message = console.message("statusCode")
    assert message.startswith("statusCode 422: image is ") and "maximum is 2097152" in message
    console.wait(lambda: console.text("#add-status") == "0 of 1 added")
    console.shot("over-size")


def _alert(console: Console):
    try:
        return console.driver.switch_to.alert
    except NoAlertPresentException:
        return None

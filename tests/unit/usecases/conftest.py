"""A gallery seeded once per session (image extraction is the slow part), cloned fresh
for each test, so use-case tests stay fast and independent."""

from __future__ import annotations

import pytest

from bench.demo_photos import photo
from opencrs.bootstrap import Services
from opencrs.domain.fields import TargetFields
from tests.fakes import FakeStores, clone, fake_services, fakes_of

GALLERY = "g"
SEEDED = ("coffee", "rocket")


@pytest.fixture(scope="session")
def seeded() -> tuple[FakeStores, dict[str, str]]:
    """Fakes holding an indexed coffee and rocket, and their target ids."""
    services = fake_services()
    ids = {
        name: services.targets.create(GALLERY, photo(name), TargetFields(name=name)).target_id
        for name in SEEDED
    }
    return fakes_of(services), ids


@pytest.fixture
def app(seeded: tuple[FakeStores, dict[str, str]]) -> Services:
    """The application over a private copy of the seeded gallery."""
    return fake_services(stores=clone(seeded[0]))


@pytest.fixture
def ids(seeded: tuple[FakeStores, dict[str, str]]) -> dict[str, str]:
    return seeded[1]

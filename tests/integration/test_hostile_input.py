"""A corpus of hostile requests through the real handlers: malformed, huge and nested
bodies, wrong types for every field, broken and exotic images, lying headers, unicode
and control characters. Each gets its documented statusCode (README "Status codes")
within bounded time and memory, never a 5xx, and the service then answers a good
request correctly."""

from __future__ import annotations

import base64
import copy
import io
import json
import resource
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from bench.demo_photos import PHOTO_DIR
from local.runtime import DEFAULT_APP_SECRET, load_event
from opencrs.wire import http_status, now_ms, sign, signed_query
from tests.integration.conftest import service_log_capture

pytestmark = pytest.mark.integration

# Per request, wall clock: a hostile input must not hold a function for long.
MAX_SECONDS = 8.0
# Peak RSS growth over the whole corpus: decompression bombs must not be decoded.
MAX_RSS_GROWTH_MB = 600

COFFEE = (PHOTO_DIR / "coffee.jpg").read_bytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- images ------------------------------------------------------------------------


def coffee_pixels() -> np.ndarray:
    return cv2.imdecode(np.frombuffer(COFFEE, np.uint8), cv2.IMREAD_COLOR)


def encode(img: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, img)
    assert ok
    return data.tobytes()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` over a few bytes of pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(COFFEE)
    sof = next(data.find(m) for m in (b"\xff\xc0", b"\xff\xc2") if data.find(m) > 0)
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def png_bomb(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A valid PNG of all-zero pixels whose IDAT deflates ~1000:1: a few hundred KB that
    decode to hundreds of MB. Built from one compressed, fully flushed block of rows
    repeated (a full flush makes each copy independent), so building it takes
    milliseconds rather than deflating the whole image."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    row = b"\x00" * (1 + width * channels * bit_depth // 8)
    rows_per_block = 64
    block = row * rows_per_block
    packer = zlib.compressobj(9)
    header = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    segment = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    head, first = header[:2], header[2:]
    blocks, extra = divmod(height, rows_per_block)
    assert extra == 0
    checksum = 1
    for _ in range(blocks):
        checksum = zlib.adler32(block, checksum)
    idat = head + first + segment * (blocks - 1)
    idat += b"\x01\x00\x00\xff\xff" + struct.pack(">I", checksum)  # final empty block
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def exif_rotated_jpeg() -> bytes:
    """Coffee stored rotated 90° counter-clockwise, with EXIF Orientation 6 ("rotate 90°
    clockwise to display"), as a phone held sideways writes it."""
    rotated = cv2.rotate(coffee_pixels(), cv2.ROTATE_90_COUNTERCLOCKWISE)
    jpeg = encode(rotated, ".jpg")
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">HHHIHH", 1, 0x0112, 3, 1, 6, 0)
    tiff += b"\x00\x00\x00\x00"
    app1 = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def pil_bytes(mode: str, fmt: str) -> bytes:
    img = Image.fromarray(cv2.cvtColor(coffee_pixels(), cv2.COLOR_BGR2RGB)).convert(mode)
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def corrupt_scan(data: bytes) -> bytes:
    """Overwrite a stretch of entropy-coded data (markers left intact)."""
    out = bytearray(data)
    start = len(out) // 2
    out[start : start + 400] = bytes((i * 37) % 255 for i in range(400))
    return bytes(out)


# -- the corpus --------------------------------------------------------------------


@dataclass
class Case:
    name: str
    route: str  # "similar" | "create" | "list" | "get"
    expected: set[int]
    body: Any = None  # params to sign (dict), or raw bytes/str sent as is
    signed: bool = True
    headers: dict[str, str] | None = None
    query: dict[str, str] | None = None
    event_patch: Callable[[dict], None] | None = None


def image_cases() -> list[Case]:
    grey = cv2.cvtColor(coffee_pixels(), cv2.COLOR_BGR2GRAY)
    bgra = cv2.cvtColor(coffee_pixels(), cv2.COLOR_BGR2BGRA)
    bgra[:, : bgra.shape[1] // 3, 3] = 0  # a transparent third
    png = encode(coffee_pixels(), ".png")
    found = {0}
    images: list[tuple[str, bytes | str, set[int]]] = [
        ("jpeg truncated in the scan", COFFEE[: len(COFFEE) // 2], {427}),
        ("jpeg truncated after the header", COFFEE[:200], {427}),
        ("jpeg with a corrupt scan", corrupt_scan(COFFEE), {0, 427}),
        ("jpeg SOI only", b"\xff\xd8\xff", {427}),
        ("png truncated", png[: len(png) // 2], {427}),
        ("png without IEND", png[:-12], {427}),
        ("png with a corrupt IDAT", corrupt_scan(png), {0, 427}),
        ("jpeg + png polyglot", COFFEE + png, found),
        ("png signature + jpeg", b"\x89PNG\r\n\x1a\n" + COFFEE, {427}),
        ("gif", b"GIF89a" + b"\x00" * 100, {427}),
        ("pdf", b"%PDF-1.7\n" + b"0" * 100, {427}),
        ("jpeg magic + zip", b"\xff\xd8\xffPK\x03\x04" + b"\x00" * 64, {427}),
        ("cmyk jpeg", pil_bytes("CMYK", "JPEG"), found),
        ("greyscale jpeg", encode(grey, ".jpg"), found),
        ("greyscale png", encode(grey, ".png"), found),
        ("16-bit png", encode(coffee_pixels().astype(np.uint16) * 257, ".png"), found),
        ("alpha png", encode(bgra, ".png"), {0}),
        ("palette png", pil_bytes("P", "PNG"), found),
        ("exif-rotated jpeg", exif_rotated_jpeg(), found),
        ("1x1 png", encode(np.zeros((1, 1), np.uint8), ".png"), {0}),
        ("1x1 jpeg", encode(np.zeros((1, 1, 3), np.uint8), ".jpg"), {0}),
        ("png claiming 30000x30000", png_claiming(30000, 30000), {422}),
        ("jpeg claiming 30000x30000", jpeg_claiming(30000, 30000), {422}),
        ("png claiming 0x0", png_claiming(0, 0), {427}),
        ("png claiming 2^32-1 wide", png_claiming(2**32 - 1, 1), {422}),
        ("png bomb: 36 MP of 16-bit RGBA (288 MB decoded)", png_bomb(6016, 6016, 16, 6), {422}),
        ("png bomb: 30 MP of 8-bit RGBA (119 MB)", png_bomb(6016, 4928, 8, 6), {0}),
        ("png bomb: 40 MP of 8-bit grey", png_bomb(6016, 6592, 8, 0), {0}),
        ("over 2 MB decoded", b"\xff\xd8\xff" + b"\x00" * (2 * 1024 * 1024 + 1), {422}),
        ("not base64", "@@@@", {414}),
        ("base64 without padding", b64(COFFEE).rstrip("=")[:-1], {414}),
        ("data url", "data:image/jpeg;base64," + b64(COFFEE), found),
        ("empty", "", {414}),
    ]
    return [
        Case(
            f"similar: {name}",
            "similar",
            codes,
            {"image": data if isinstance(data, str) else b64(data)},
        )
        for name, data, codes in images
    ]


def field_cases() -> list[Case]:
    image = b64(COFFEE)
    good = {"image": image, "name": "hostile", "allowSimilar": "1"}
    wrong: list[tuple[str, Any, int]] = [
        ("image", 123, 414),
        ("image", ["a"], 414),
        ("image", {"a": 1}, 414),
        ("image", True, 414),
        ("image", None, 414),
        ("name", 123, 414),
        ("name", "", 414),
        ("name", "   ", 414),
        ("name", "x" * 65, 414),
        ("name", ["x"], 414),
        ("name", None, 414),
        ("size", [1], 414),
        ("size", True, 414),
        ("size", {"cm": 1}, 414),
        ("size", "9" * 65, 414),
        ("size", "x" * 500_000, 414),
        ("meta", 123, 414),
        ("meta", ["m"], 414),
        ("meta", "m" * (2 * 1024 * 1024 + 1), 422),
        ("type", "CloudTarget", 414),
        ("type", 7, 414),
        ("active", "2", 414),
        ("active", [], 414),
        ("active", None, 414),
        ("allowSimilar", "yes", 414),
        ("allowSimilar", {"a": 1}, 414),
    ]
    cases = [
        Case(f"create: {field}={str(value)[:20]!r}", "create", {code}, {**good, field: value})
        for field, value, code in wrong
    ]
    auth: list[tuple[str, dict, int]] = [
        ("appKey missing", {"appKey": None}, 1),
        ("appKey a number", {"appKey": 123}, 1),
        ("appKey a list", {"appKey": ["k"]}, 1),
        ("appKey empty", {"appKey": ""}, 1),
        ("appKey unknown", {"appKey": "nobody"}, 4),
        ("timestamp text", {"timestamp": "yesterday"}, 3),
        ("timestamp a float", {"timestamp": 1.5}, 3),
        ("timestamp a list", {"timestamp": [1]}, 3),
        ("timestamp an hour old", {"timestamp": now_ms() - 3_600_000}, 3),
        ("timestamp 5000 digits", {"timestamp": "9" * 5000}, 3),
        ("signature a number", {"signature": 123}, 2),
        ("signature wrong", {"signature": "0" * 64}, 2),
        ("signature unicode", {"signature": "\u017f" * 64}, 2),
    ]
    cases += [
        Case(f"similar: {name}", "similar", {code}, {"image": image, **over})
        for name, over, code in auth
    ]
    cases += [
        Case(
            "create: name with control characters is kept",
            "create",
            {0},
            {**good, "name": "\x00\x07\x1b[31m☕\u202e名前", "meta": "\x00\ufeff\U0001f600"},
        ),
        Case("create: lone surrogate in name", "create", {414}, {**good, "name": "\ud800"}),
        Case("create: lone surrogate in meta", "create", {414}, {**good, "meta": "a\udfff"}),
        Case("create: lone surrogate as a key", "create", {414}, {**good, "\ud83d": "x"}),
    ]
    return cases


def body_cases() -> list[Case]:
    huge_string = json.dumps({"image": "A" * (9 * 1024 * 1024)})
    raw = [
        ("malformed json", '{"image": '),
        ("json array", "[]"),
        ("json null", "null"),
        ("json number", "12"),
        ("json string", '"image"'),
        ("empty body", ""),
        ("whitespace body", " \n\t "),
        ("body over 8 MB", huge_string),
        ("nested arrays 100k deep", "[" * 100_000),
        ("nested objects 50k deep", '{"a":' * 50_000 + "1" + "}" * 50_000),
        ("integer of 5000 digits", '{"image": ' + "1" * 5000 + "}"),
        ("invalid utf-8", b'{"image": "\xff\xfe"}'),
    ]
    cases = [Case(f"body: {name}", "similar", {414}, body, signed=False) for name, body in raw]
    cases += [
        # JSON extensions Python accepts are a JSON object all the same: auth decides.
        Case(
            "body: NaN and Infinity",
            "similar",
            {1},
            '{"image": NaN, "appKey": Infinity}',
            signed=False,
        ),
        Case(
            "body: text/plain",
            "similar",
            {415},
            "{}",
            signed=False,
            headers={"Content-Type": "text/plain"},
        ),
        Case(
            "body: no content type",
            "similar",
            {415},
            "{}",
            signed=False,
            headers={"Content-Type": ""},
        ),
        Case(
            "body: bad base64 envelope",
            "similar",
            {414},
            "%%%",
            signed=False,
            event_patch=lambda e: e.update(isBase64Encoded=True),
        ),
    ]
    pages = [("0", "10"), ("1", "0"), ("1", "101"), ("x", "10"), ("-1", "10"), ("1", "1e3")]
    cases += [
        Case(f"list: pageNum={n} pageSize={s}", "list", {414}, query={"pageNum": n, "pageSize": s})
        for n, s in pages
    ]
    cases += [
        Case("get: unknown id", "get", {404}, query={}, event_patch=path_id("nope")),
        Case("get: 2000-character id", "get", {404}, query={}, event_patch=path_id("a" * 2000)),
        Case(
            "get: id with control characters",
            "get",
            {404},
            query={},
            event_patch=path_id("\x00\x1b../../T#x"),
        ),
    ]
    return cases


def path_id(target_id: str) -> Callable[[dict], None]:
    def patch(event: dict) -> None:
        event["pathParameters"] = {"id": target_id}
        event["path"] = f"/target/{target_id}"

    return patch


CORPUS = image_cases() + field_cases() + body_cases()


# -- running a case -------------------------------------------------------------------

EVENT_FILES = {
    "similar": "similar.json",
    "create": "targets_create.json",
    "list": "targets_list.json",
    "get": "target_get.json",
}


def build_event(stack, case: Case) -> dict:
    event = copy.deepcopy(load_event(EVENT_FILES[case.route]))
    if case.query is not None:
        params = signed_query(case.query, stack.app_key, stack.secret)
        event["queryStringParameters"] = params
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in params.items()}
    elif case.signed:
        params = {"timestamp": now_ms(), "appKey": stack.app_key, **case.body}
        params = {k: v for k, v in params.items() if v is not None or k != "appKey"}
        if "signature" not in case.body:
            # Signed over exactly what is sent (lone surrogates included), so the request
            # passes authentication and the field itself must be refused.
            params["signature"] = sign(params, stack.secret)
        event["body"] = json.dumps(params)
    else:
        event["body"] = case.body
    for name, value in (case.headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    if case.event_patch:
        case.event_patch(event)
    if isinstance(case.body, bytes):  # bytes that are not UTF-8: send base64-encoded
        event["body"] = b64(case.body)
        event["isBase64Encoded"] = True
    return event


def handler_for(stack, route: str):
    return stack.similar_handler if route == "similar" else stack.targets_handler


SENT: list[str] = []  # signatures and image prefixes sent, to look for in the logs


@pytest.fixture(scope="module", autouse=True)
def service_logs(stack) -> Iterator[io.StringIO]:
    """The service's logs during the corpus (see conftest.service_log_capture)."""
    with service_log_capture() as stream:
        yield stream


def remember_secrets(event: dict) -> None:
    try:
        params = json.loads(event["body"]) if event.get("body") else {}
    except (ValueError, RecursionError):
        return
    if not isinstance(params, dict):
        return
    for name in ("signature", "image"):
        value = params.get(name)
        if isinstance(value, str) and len(value) >= 16:
            SENT.append(value[-64:] if name == "image" else value)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.fixture(scope="module")
def rss_before() -> float:
    return peak_rss_mb()


@pytest.fixture(scope="module")
def known_target(stack, rss_before) -> str:
    event = stack.signed_event("targets_create.json", image=b64(COFFEE), name="coffee")
    status, body = stack.api(stack.targets_handler, event)
    assert body["statusCode"] == 0, body
    return body["result"]["targetId"]


def good_request_works(stack, known_target: str) -> None:
    status, body = stack.similar(COFFEE)
    assert status == 200 and body["statusCode"] == 0
    assert known_target in [t["targetId"] for t in body["result"]["results"]]


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_hostile_request_gets_its_documented_code(stack, known_target, case: Case) -> None:
    event = build_event(stack, case)
    remember_secrets(event)
    started = time.perf_counter()
    status, body = stack.api(handler_for(stack, case.route), event)
    elapsed = time.perf_counter() - started
    assert body["statusCode"] in case.expected, body
    unrouted = (status, body["statusCode"]) == (404, 404) and "no such route" in body["result"]
    assert (status == http_status(body["statusCode"]) or unrouted) and status < 500
    assert set(body) == {"statusCode", "result", "timestamp"}
    if body["statusCode"] != 0:
        assert isinstance(body["result"], str) and "Traceback" not in body["result"]
    assert elapsed < MAX_SECONDS, f"{case.name} took {elapsed:.1f} s"
    if case.route != "similar" or not isinstance(case.body, dict) or "image" not in case.body:
        return
    # After any image the next good request is answered correctly.
    good_request_works(stack, known_target)


def test_exotic_images_of_a_target_are_recognised(stack, known_target) -> None:
    """CMYK, grey, 16-bit, palette and EXIF-rotated versions of an indexed photo are the
    same target: they are decoded as the photo, not as noise."""
    for case in image_cases():
        if case.expected != {0} or any(w in case.name for w in ("1x1", "alpha", "bomb")):
            continue
        event = build_event(stack, case)
        status, body = stack.api(stack.similar_handler, event)
        ids = [t["targetId"] for t in body["result"]["results"]]
        assert known_target in ids, case.name


def test_unicode_and_control_characters_round_trip(stack) -> None:
    name, meta = "\x07\x1b[31m☕\u202e名前 \U0001f600", "\x00\ufeff\u2028 meta \U0001f600"
    event = stack.signed_event(
        "targets_create.json", image=b64(COFFEE), name=name, meta=meta, allowSimilar="1"
    )
    status, body = stack.api(stack.targets_handler, event)
    assert body["statusCode"] == 0, body
    got = stack.api(
        stack.targets_handler,
        stack.signed_query_event("target_get.json", body["result"]["targetId"]),
    )[1]
    assert got["result"]["name"] == name.strip() and got["result"]["meta"] == meta


def test_corpus_stays_within_memory(stack, known_target, rss_before) -> None:
    """The process's peak RSS grew by a bounded amount over the whole corpus (PNG bombs
    included), and the service still answers."""
    assert len(CORPUS) >= 100
    growth = peak_rss_mb() - rss_before
    assert growth < MAX_RSS_GROWTH_MB, f"peak RSS grew {growth:.0f} MB"
    good_request_works(stack, known_target)


def test_no_secret_signature_or_image_bytes_in_the_logs(service_logs, known_target) -> None:
    logs = service_logs.getvalue()
    assert "internal error" not in logs  # no hostile input reached the 500 path
    assert SENT, "the corpus ran first"
    for secret in [DEFAULT_APP_SECRET, *SENT]:
        leaks = [line[:400] for line in logs.splitlines() if secret in line]
        assert not leaks, leaks

"""The header-only JPEG/PNG size reader agrees with Pillow, or leaves the file to it."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from yolo2retina.image import _header_is_upright, exif_orientation, read_image_hw
from yolo2retina.image_header import header_hw, parse_header_hw


def pillow_hw(data: bytes) -> tuple[int, int] | None:
    """What read_image_hw's Pillow path answers for these bytes (None: Pillow refuses)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if exif_orientation(img) in (5, 6, 7, 8) and not _header_is_upright(img):
                    w, h = h, w
        except Exception:
            return None
    return (h, w) if w > 0 and h > 0 else None


def encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def exif_bytes(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "maker"  # another tag before/after the orientation
    return exif.tobytes()


JPEGS = {
    "rgb": encode(Image.new("RGB", (37, 21), (1, 2, 3)), "JPEG"),
    "gray": encode(Image.new("L", (5, 300)), "JPEG"),
    "cmyk": encode(Image.new("CMYK", (64, 48)), "JPEG"),
    "progressive": encode(Image.new("RGB", (90, 33)), "JPEG", progressive=True),
    "comment": encode(Image.new("RGB", (12, 7)), "JPEG", comment=b"hello"),
    "dpi": encode(Image.new("RGB", (12, 7)), "JPEG", dpi=(300, 300)),
    "icc": encode(Image.new("RGB", (12, 7)), "JPEG", icc_profile=b"\0" * 3000),
    "quality100": encode(Image.new("RGB", (640, 480)), "JPEG", quality=100),
    **{
        f"exif{o}": encode(Image.new("RGB", (40, 30)), "JPEG", exif=exif_bytes(o))
        for o in range(0, 10)
    },
}
PNGS = {
    mode: encode(Image.new(mode, (33, 17)), "PNG")
    for mode in ("1", "L", "P", "RGB", "RGBA", "LA", "I;16")
}
PNGS["dpi"] = encode(Image.new("RGB", (8, 9)), "PNG", dpi=(72, 72))
PNGS["interlaced"] = encode(Image.new("RGB", (8, 9)), "PNG", interlace=1)


@pytest.mark.parametrize("name", sorted(JPEGS))
def test_jpeg_sizes_and_orientation_match_pillow(name: str) -> None:
    data = JPEGS[name]
    assert parse_header_hw(data) is not None, "plain JPEGs take the fast path"
    assert parse_header_hw(data) == pillow_hw(data)


def test_exif_orientation_swaps_width_and_height() -> None:
    assert parse_header_hw(JPEGS["exif6"]) == (40, 30)
    assert parse_header_hw(JPEGS["exif1"]) == (30, 40)
    assert parse_header_hw(JPEGS["exif9"]) == (30, 40)  # out of range: 1, as Pillow


@pytest.mark.parametrize("name", sorted(PNGS))
def test_png_sizes_match_pillow(name: str) -> None:
    data = PNGS[name]
    assert parse_header_hw(data) is not None
    assert parse_header_hw(data) == pillow_hw(data)


@pytest.mark.parametrize(
    "data",
    [
        encode(Image.new("RGB", (8, 9)), "PNG", exif=exif_bytes(6)),  # eXIf chunk
        encode(Image.new("RGB", (8, 9)), "PNG", icc_profile=b"\0" * 200),  # iCCP
        encode(Image.new("RGB", (8, 9)), "BMP"),
        encode(Image.new("RGB", (8, 9)), "WEBP"),
        encode(Image.new("RGB", (8, 9)), "TIFF"),
        JPEGS["rgb"][:20],  # truncated before the frame header
        b"",
    ],
    ids=["png-exif", "png-icc", "bmp", "webp", "tiff", "truncated", "empty"],
)
def test_anything_unusual_is_left_to_pillow(data: bytes) -> None:
    assert parse_header_hw(data) is None


@pytest.mark.parametrize(
    ("exif", "xmp", "hw"),
    [
        (None, b'<x tiff:Orientation="6"/>', (9, 8)),
        (None, b"<x><tiff:Orientation>8</tiff:Orientation></x>", (9, 8)),
        (None, b'<x tiff:Orientation="9"/>', (8, 9)),
        (None, b"<x/>", (8, 9)),
        (3, b'<x tiff:Orientation="6"/>', (8, 9)),  # EXIF's orientation wins
        (6, b'<x tiff:Orientation="1"/>', (9, 8)),
    ],
)
def test_xmp_orientation_applies_when_exif_has_none(
    exif: int | None, xmp: bytes, hw: tuple[int, int]
) -> None:
    kw: dict[str, object] = {"xmp": xmp}
    if exif is not None:
        kw["exif"] = exif_bytes(exif)
    data = encode(Image.new("RGB", (9, 8)), "JPEG", **kw)
    assert parse_header_hw(data) == pillow_hw(data) == hw


def test_png_text_chunk_is_left_to_pillow() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Raw profile type exif", "x")  # Pillow reads EXIF from this
    assert parse_header_hw(encode(Image.new("L", (4, 4)), "PNG", pnginfo=info)) is None


def test_bomb_limit_is_left_to_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    assert parse_header_hw(JPEGS["rgb"]) is None
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert parse_header_hw(JPEGS["rgb"]) == (21, 37)


def test_read_image_hw_uses_it_on_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.jpg").write_bytes(JPEGS["exif8"])
    (tmp_path / "b.webp").write_bytes(encode(Image.new("RGB", (8, 9)), "WEBP"))
    monkeypatch.chdir(tmp_path)
    assert header_hw("a.jpg") == (40, 30)
    assert read_image_hw("a.jpg") == (40, 30)
    assert header_hw("b.webp") is None
    assert read_image_hw("b.webp") == (9, 8)  # Pillow's path


def test_a_fifo_is_still_refused(tmp_path: Path) -> None:
    import os

    from yolo2retina.errors import ImageReadError

    fifo = tmp_path / "x.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image_hw(fifo)


_BASES = [
    JPEGS["exif6"],
    encode(Image.new("RGB", (9, 8)), "JPEG", xmp=b'<x tiff:Orientation="6"/>'),
    JPEGS["icc"],
    JPEGS["progressive"],
    PNGS["RGBA"],
    PNGS["dpi"],
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(_BASES),
    edits=st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 255), st.sampled_from(["set", "ins", "del"])),
        min_size=1,
        max_size=4,
    ),
    cut=st.one_of(st.none(), st.integers(0, 600)),
)
def test_mutated_headers_never_disagree_with_pillow(
    base: bytes, edits: list[tuple[int, int, str]], cut: int | None
) -> None:
    """Whenever the fast reader answers for a corrupted header, Pillow answers the same."""
    data = bytearray(base)
    for pos, value, op in edits:
        pos = min(pos, len(data) - 1)
        if op == "set":
            data[pos] = value
        elif op == "ins":
            data.insert(pos, value)
        else:
            del data[pos]
    blob = bytes(data if cut is None else data[:cut])
    fast = parse_header_hw(blob)
    if fast is not None:
        assert fast == pillow_hw(blob)


def test_real_images_agree_with_pillow(varroa_yaml: Path, blood_coco: Path) -> None:
    """Every real image (sticky-board tiles, board photos, blood-cell JPEGs): the fast
    reader either answers Pillow's size or leaves the file to Pillow."""
    from yolo2retina.image import IMAGE_EXTENSIONS

    files = [
        p
        for root in (varroa_yaml.parent, blood_coco)
        for p in sorted(root.rglob("*"))
        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
    ]
    assert len(files) > 50
    answered = 0
    for p in files:
        data = p.read_bytes()
        fast = header_hw(p)
        if fast is not None:
            answered += 1
            assert fast == pillow_hw(data), p
    assert answered > len(files) // 2, f"the fast path answered only {answered}/{len(files)}"

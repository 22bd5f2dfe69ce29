"""Image loading: EXIF orientation, modes, reduced-size decoding, errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from yolo2retina.errors import ConfigError, ImageReadError
from yolo2retina.image import (
    exif_orientation,
    find_images,
    image_to_tensor,
    load_image,
    read_image_hw,
    reduced_size,
    upright,
)

#: How to store an upright image so that EXIF orientation ``o`` shows it upright again.
_STORE = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def quadrants(w: int = 60, h: int = 40) -> Image.Image:
    """An upright image whose four quadrants have four different colours."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2 :] = (0, 255, 0)
    a[h // 2 :, : w // 2] = (0, 0, 255)
    a[h // 2 :, w // 2 :] = (255, 255, 0)
    return Image.fromarray(a)


def store(path: Path, up: Image.Image, orientation: int, **kw: Any) -> Path:
    """Save ``up`` as a camera would store it for ``orientation``."""
    how = _STORE[orientation]
    stored = up if how is None else up.transpose(how)
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored.save(path, exif=exif.tobytes(), **kw)
    return path


def corner_colors(img: Image.Image) -> list[tuple[int, ...]]:
    a = np.asarray(img)
    h, w = a.shape[:2]
    return [
        tuple(int(v) // 64 for v in a[y, x])
        for y, x in ((2, 2), (2, w - 3), (h - 3, 2), (h - 3, w - 3))
    ]


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_all_eight_exif_orientations_load_upright(
    tmp_path: Path, orientation: int, ext: str
) -> None:
    """Every EXIF orientation decodes to the upright image, header size agrees, PIL agrees."""
    up = quadrants()
    path = store(tmp_path / f"o{orientation}{ext}", up, orientation)
    img = load_image(path)
    assert img.size == (60, 40) and img.mode == "RGB"
    assert read_image_hw(path) == (40, 60)
    assert corner_colors(img) == corner_colors(up)
    with Image.open(path) as raw:
        assert exif_orientation(raw) == orientation
        assert corner_colors(ImageOps.exif_transpose(raw).convert("RGB")) == corner_colors(up)
        assert corner_colors(upright(raw)) == corner_colors(up)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_max_size_keeps_orientation_and_full_decode_size(tmp_path: Path, orientation: int) -> None:
    """Draft decoding gives the size of a full decode + resize, upright, for every orientation."""
    up = quadrants(400, 300)
    path = store(tmp_path / "big.jpg", up, orientation, quality=95)
    small = load_image(path, max_size=64)
    assert small.size == (64, 48)
    assert corner_colors(small) == corner_colors(up)
    full = np.asarray(load_image(path).resize((64, 48), Image.Resampling.BILINEAR), np.float32)
    assert np.abs(np.asarray(small, np.float32) - full).mean() < 6


@settings(max_examples=40, deadline=None)
@given(
    w=st.integers(1, 5000),
    h=st.integers(1, 5000),
    m=st.integers(1, 3000),
)
def test_reduced_size_keeps_aspect_and_bounds(w: int, h: int, m: int) -> None:
    """reduced_size never exceeds max_size, never grows, and keeps the aspect within a pixel."""
    rw, rh = reduced_size((w, h), m)
    assert max(rw, rh) <= max(m, max(w, h) if max(w, h) <= m else m)
    assert rw <= w and rh <= h and rw >= 1 and rh >= 1
    if max(w, h) > m:
        assert max(rw, rh) == m
        assert abs(rw / m - w / max(w, h)) <= 1 / m + 1e-9 or rw == 1
        assert abs(rh / m - h / max(w, h)) <= 1 / m + 1e-9 or rh == 1


def test_max_size_on_png_and_small_images(tmp_path: Path) -> None:
    """Non-JPEGs are resized exactly; images already small enough are left alone."""
    p = tmp_path / "x.png"
    quadrants(300, 200).save(p)
    assert load_image(p, max_size=150).size == (150, 100)
    assert load_image(p, max_size=1000).size == (300, 200)
    with pytest.raises(ConfigError, match="max_size"):
        load_image(p, max_size=0)


@pytest.mark.parametrize(
    ("mode", "ext"),
    [
        ("RGBA", ".png"),
        ("P", ".png"),
        ("L", ".png"),
        ("LA", ".png"),
        ("CMYK", ".jpg"),
        ("I;16", ".png"),
        ("I;16", ".tif"),
        ("1", ".png"),
        ("RGB", ".webp"),
        ("RGB", ".bmp"),
    ],
)
def test_modes_become_8bit_rgb(tmp_path: Path, mode: str, ext: str) -> None:
    """RGBA, palette, grey, CMYK, 16-bit and 1-bit images load as 8-bit RGB of the right brightness."""
    path = tmp_path / f"img{ext}"
    if mode == "I;16":
        a = np.full((20, 30), 40000, np.uint16)
        Image.fromarray(a).save(path)
        expected = 40000 / 65535 * 255
    elif mode == "1":
        Image.new("1", (30, 20), 1).save(path)
        expected = 255.0
    else:
        Image.new("RGB", (30, 20), (200, 200, 200)).convert(mode).save(path)
        expected = 200.0
    img = load_image(path)
    assert img.mode == "RGB" and img.size == (30, 20)
    assert abs(float(np.asarray(img).mean()) - expected) < 6
    t = image_to_tensor(img)
    assert t.shape == (3, 20, 30) and t.dtype.is_floating_point and float(t.max()) <= 1.0


def test_transparent_pixels_become_black(tmp_path: Path) -> None:
    """Fully transparent RGBA pixels are black, opaque ones keep their colour."""
    a = np.zeros((10, 10, 4), np.uint8)
    a[:, :5] = (255, 255, 255, 255)
    a[:, 5:] = (255, 255, 255, 0)
    p = tmp_path / "t.png"
    Image.fromarray(a, "RGBA").save(p)
    out = np.asarray(load_image(p))
    assert out[:, :5].min() == 255 and out[:, 5:].max() == 0


def test_truncated_jpeg_raises_error_naming_the_file(tmp_path: Path) -> None:
    """A cut-off JPEG raises ImageReadError that names the file; so does its reduced decode."""
    p = tmp_path / "cut.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(p, quality=90)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    assert read_image_hw(p) == (200, 300)  # the header is intact
    for max_size in (None, 64):
        with pytest.raises(ImageReadError, match=r"cut\.jpg.*truncated"):
            load_image(p, max_size=max_size)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        (b"", "not a readable image"),
        (b"GIF89a junk", "cut|readable|corrupt|cannot"),
    ],
)
def test_unreadable_files_raise_error_naming_the_file(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    """Missing, empty and garbage files raise ImageReadError (an OSError) naming the file."""
    p = tmp_path / "broken.jpg"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(ImageReadError, match=message) as e:
        load_image(p)
    assert "broken.jpg" in str(e.value) and isinstance(e.value, OSError)
    with pytest.raises(ImageReadError, match=r"broken\.jpg"):
        read_image_hw(p)


def test_upright_leaves_derived_images_alone(tmp_path: Path) -> None:
    """An image already passed through exif_transpose (format None) is not rotated again."""
    path = store(tmp_path / "o6.jpg", quadrants(), 6, quality=95)
    with Image.open(path) as raw:
        once = ImageOps.exif_transpose(raw)
    assert upright(once).size == (60, 40)
    assert corner_colors(upright(once)) == corner_colors(quadrants())


def test_find_images_file_folder_and_glob(tmp_path: Path) -> None:
    """A file, a folder (recursive, images only, sorted) and a glob all list images."""
    for name in ("b.jpg", "a.PNG", "sub/c.jpeg", "notes.txt"):
        f = tmp_path / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x")
    assert find_images(tmp_path / "b.jpg") == [tmp_path / "b.jpg"]
    assert [p.name for p in find_images(tmp_path)] == ["a.PNG", "b.jpg", "c.jpeg"]
    assert [p.name for p in find_images(str(tmp_path / "*.jpg"))] == ["b.jpg"]
    with pytest.raises(ImageReadError, match="no images"):
        find_images(tmp_path / "nothing-*.jpg")


def test_real_phone_photo_reduced_decode(varroa_yaml: Path) -> None:
    """A real 4080x3072 phone photo: header size, and a draft decode of the exact reduced size."""
    photos = sorted((varroa_yaml.parent / "unlabelled-photos").glob("*.jpg"))
    if not photos:
        pytest.skip("no unlabelled photos beside the varroa data")
    h, w = read_image_hw(photos[0])
    img = load_image(photos[0], max_size=640)
    assert img.size == reduced_size((w, h), 640) and max(img.size) == 640


def marked(w: int = 7, h: int = 5) -> Image.Image:
    """A small upright image with a different value in every pixel (no symmetry at all)."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = (np.arange(w * h).reshape(h, w) * 5) % 256
    a[..., 1] = 255 - a[..., 0]
    a[0, 0] = (255, 255, 255)  # the top-left corner is marked
    return Image.fromarray(a)


_LOSSLESS = {".png": {}, ".tif": {}, ".webp": {"lossless": True}}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", [".png", ".tif", ".webp", ".jpg"])
def test_every_format_and_orientation_is_upright_once(
    tmp_path: Path, orientation: int, ext: str
) -> None:
    """JPEG, PNG, WebP and TIFF with EXIF orientation 1-8 decode to the upright pixels.

    Pillow's TIFF plugin transposes by itself while loading; the library used to apply
    the orientation a second time (and to swap the header size twice).
    """
    if ext == ".jpg":
        up = quadrants()
        path = store(tmp_path / f"o{orientation}{ext}", up, orientation, quality=95)
    else:
        up = marked()
        path = store(tmp_path / f"o{orientation}{ext}", up, orientation, **_LOSSLESS[ext])
    w, h = up.size
    assert read_image_hw(path) == (h, w)
    with Image.open(path) as raw:
        fresh = upright(raw)
    big = load_image(path, max_size=max(w, h) * 2)  # the max_size path, no resize
    for img in (load_image(path), big, fresh):
        assert img.size == (w, h)
        if ext == ".jpg":
            assert corner_colors(img) == corner_colors(up)
        else:
            np.testing.assert_array_equal(np.asarray(img), np.asarray(up))


@pytest.mark.parametrize("orientation", [2, 5, 6, 8])
def test_tiff_reduced_decode_is_upright_and_of_the_reduced_size(
    tmp_path: Path, orientation: int
) -> None:
    """A rotated TIFF shrunk with max_size has the upright reduced size and layout."""
    up = quadrants(400, 300)
    path = store(tmp_path / "big.tif", up, orientation)
    small = load_image(path, max_size=64)
    assert small.size == (64, 48)
    assert corner_colors(small) == corner_colors(up)


def test_decompression_bomb_is_an_image_read_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow's DecompressionBombError becomes ImageReadError naming the file."""
    p = tmp_path / "bomb.png"
    Image.new("RGB", (30, 30)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 900 px > 2 x limit: an error
    for read in (read_image_hw, load_image):
        with pytest.raises(ImageReadError, match=r"bomb\.png.*decompression bomb"):
            read(p)


def test_fifo_is_refused_without_opening_it(tmp_path: Path) -> None:
    """A FIFO named like an image is an ImageReadError, not a hang.

    A helper thread unblocks a reader that did open the FIFO, so the old code fails
    (with another message) instead of hanging the test run.
    """
    import errno
    import os
    import threading

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    stop = threading.Event()

    def unblock() -> None:
        while not stop.is_set():
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:  # ENXIO: nobody reads the FIFO yet
                if e.errno != errno.ENXIO:
                    return
                stop.wait(0.05)
            else:
                os.close(fd)

    helper = threading.Thread(target=unblock, daemon=True)
    helper.start()
    try:
        for read in (read_image_hw, load_image):
            with pytest.raises(ImageReadError, match=r"pipe\.jpg: not a regular file"):
                read(fifo)
        with pytest.raises(ImageReadError, match=r"not a regular file"):
            read_image_hw(tmp_path)  # a folder
    finally:
        stop.set()
        helper.join()


def _image_to_tensor_0_1(img: Image.Image) -> Any:
    """image_to_tensor as 0.1 computed it (HWC uint8 copy, permute, float, divide)."""
    import torch

    from yolo2retina.image import _to_rgb

    a = np.asarray(_to_rgb(img), dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)


def _random_image(mode: str, w: int, h: int, seed: int) -> Image.Image:
    """A random ``w x h`` image of ``mode`` (every byte value likely at 64x64 and up)."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    if mode in ("I", "F"):
        return Image.fromarray(rng.integers(0, 4096, (h, w)).astype(np.int32)).convert(mode)
    if mode == "P":  # a palette of 64 random colours, half of the images with transparency
        img = Image.fromarray(rng.integers(0, 64, (h, w), dtype=np.uint8), mode="L")
        img = img.convert("P")
        img.putpalette(rng.integers(0, 256, 64 * 3, dtype=np.uint8).tobytes())
        if seed % 2:
            img.info["transparency"] = 3
        return img
    rgba = Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), mode="RGBA")
    return rgba if mode == "RGBA" else rgba.convert(mode)


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(["RGB", "L", "RGBA", "LA", "P", "CMYK", "1", "I;16", "I", "F"]),
    w=st.integers(1, 70),
    h=st.integers(1, 70),
    seed=st.integers(0, 2**16),
)
def test_image_to_tensor_equals_the_0_1_formula_bit_for_bit(
    mode: str, w: int, h: int, seed: int
) -> None:
    """The band-by-band conversion gives 0.1's values exactly, as a contiguous (3, H, W)
    float32 tv_tensors.Image (0.1's permuted tensor was not contiguous)."""
    import torch
    from torchvision import tv_tensors

    img = _random_image(mode, w, h, seed)
    t = image_to_tensor(img)
    assert type(t) is tv_tensors.Image
    assert t.dtype == torch.float32 and t.shape == (3, h, w)
    assert t.is_contiguous()
    expected = _image_to_tensor_0_1(img)
    assert torch.equal(t.as_subclass(torch.Tensor), expected)
    assert torch.equal(t.view(torch.int32), expected.contiguous().view(torch.int32))  # bits


def test_image_to_tensor_every_byte_value_and_photo_sizes() -> None:
    """All 256 byte values in each channel, and a 640-px image: 0.1's bits, contiguous and
    writable (the tensor owns its memory, not the PIL image's)."""
    import torch

    ramp = np.stack(
        [np.arange(256), np.arange(256)[::-1], (np.arange(256) * 7) % 256], axis=-1
    ).astype(np.uint8)
    photo = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for a in (ramp.reshape(16, 16, 3), photo):
        img = Image.fromarray(a)
        t = image_to_tensor(img)
        assert t.is_contiguous() and t.shape == (3, *a.shape[:2])
        assert torch.equal(
            t.view(torch.int32), _image_to_tensor_0_1(img).contiguous().view(torch.int32)
        )
        t.mul_(0.5)  # writable, and the image is untouched
        assert np.array_equal(np.asarray(img), a)

"""Images are read as users see them (issue 21): EXIF orientation applied, 16-bit and float images scaled to
8 bit rather than clipped, unreadable bytes refused in one line naming the file; the same in the datasets, in
their file check (``bad_files``) and in ``predict`` (which uses :func:`read_image`)."""

import numpy as np
import pytest
from PIL import Image

from setr_edu.data import FolderDataset
from setr_edu.data.datasets import BadFileError, image_header, read_image


def _quadrants(h=40, w=60) -> np.ndarray:
    """An RGB image whose four quadrants are red, green, blue and white: its orientation is visible."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2:] = (0, 255, 0)
    a[h // 2:, : w // 2] = (0, 0, 255)
    a[h // 2:, w // 2:] = 255
    return a


def _exif_jpeg(path, array, orientation: int):
    """A JPEG as a phone stores it: the pixels as the sensor read them, the rotation in the EXIF tag 0x0112."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(array).save(path, quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("orientation,expected", [
    (1, lambda a: a), (3, lambda a: a[::-1, ::-1]),
    (6, lambda a: np.rot90(a, -1)),  # "rotate 90 CW to display": the usual portrait phone photo
    (8, lambda a: np.rot90(a, 1)), (2, lambda a: a[:, ::-1]), (5, lambda a: a.transpose(1, 0, 2))])
def test_exif_orientation_is_applied_like_a_photo_viewer(tmp_path, orientation, expected):
    stored = _quadrants()
    path = tmp_path / "phone.jpg"
    _exif_jpeg(path, stored, orientation)
    seen = expected(stored)
    rgb = read_image(path)
    assert rgb.shape == seen.shape
    assert np.abs(rgb.astype(int) - seen).mean() < 6  # JPEG noise only
    assert image_header(path) == (seen.shape[1], seen.shape[0])  # (width, height) as displayed


def test_a_rotated_photo_pairs_with_a_label_drawn_on_the_displayed_image(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "ann").mkdir()
    _exif_jpeg(tmp_path / "img" / "a.jpg", _quadrants(40, 60), 6)  # stored 60 wide, displayed 40 wide
    Image.fromarray(np.zeros((60, 40), np.uint8)).save(tmp_path / "ann" / "a.png")
    ds = FolderDataset(tmp_path / "img", tmp_path / "ann", num_classes=2)
    assert ds.bad_files() == []
    image, label = ds.get_raw(0)
    assert image.shape == (60, 40, 3) and label.shape == (60, 40)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 20 * 30).round().astype(np.uint16).reshape(20, 30)
    Image.fromarray(ramp).save(tmp_path / "depth16.png")  # mode I;16, as scientific and medical tools write
    assert Image.open(tmp_path / "depth16.png").mode == "I;16"
    rgb = read_image(tmp_path / "depth16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 30, 3)
    np.testing.assert_array_equal(rgb[..., 0], np.round(ramp / 257).astype(np.uint8))
    assert (rgb == 255).mean() < 0.01  # was 99.5% clipped to white


def test_16_bit_rgb_png_keeps_its_colours(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rgb16 = (np.arange(20 * 30 * 3).reshape(20, 30, 3) * 36).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb16[..., ::-1])  # BGR on disk, 48 bits per pixel
    np.testing.assert_allclose(read_image(tmp_path / "rgb16.png"), rgb16 / 257, atol=1)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_float_tiff_is_scaled_not_black(tmp_path, scale):
    ramp = np.linspace(0, 1, 20 * 30, dtype=np.float32).reshape(20, 30)
    Image.fromarray(ramp * scale).save(tmp_path / "f.tif")  # mode F, 32-bit float
    rgb = read_image(tmp_path / "f.tif")
    assert rgb.dtype == np.uint8 and rgb.shape == (20, 30, 3)
    np.testing.assert_allclose(rgb[..., 1], ramp * 255, atol=1)  # 0..1 (or 0..255) -> 0..255, was all 0 or 1


def test_float_tiff_with_nan_and_big_values_is_readable(tmp_path):
    a = np.linspace(0, 4000, 20 * 30, dtype=np.float32).reshape(20, 30)
    a[0, 0] = np.nan
    Image.fromarray(a).save(tmp_path / "f.tif")
    rgb = read_image(tmp_path / "f.tif")
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and 120 < rgb[10, 15, 0] < 135  # scaled by the maximum


def test_zip_like_bytes_as_an_image_are_one_line_naming_the_file(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(0).bytes(3000))
    for reader in (read_image, image_header):
        with pytest.raises(BadFileError, match="photo.jpg is not a readable image") as e:
            reader(path)
        assert "\n" not in str(e.value)


def test_predict_reads_rotated_16_bit_and_float_files_as_displayed(tmp_path):
    """``python -m setr_edu predict`` on a phone photo, a 16-bit PNG and a float TIFF: the predictions have the
    displayed size and the overlay (alpha 0.01: almost the input) shows the scaled pixels, not white or black."""
    from engine_helpers import TINY_ARGS, one_thread

    from setr_edu.cli import main

    work, images, out = tmp_path / "run", tmp_path / "in", tmp_path / "out"
    images.mkdir()
    with one_thread():
        assert main(["train", "--config", "synthetic_ci", "--max-iters", "1", "--work-dir", str(work),
                     "--no-progress", *TINY_ARGS]) == 0
    _exif_jpeg(images / "phone.jpg", _quadrants(40, 60), 6)
    ramp = np.linspace(0, 1, 24 * 32, dtype=np.float32).reshape(24, 32)
    Image.fromarray((ramp * 65535).round().astype(np.uint16)).save(images / "deep.png")
    Image.fromarray(ramp).save(images / "float.tif")
    with one_thread():
        assert main(["predict", "--checkpoint", str(work / "last.pt"), str(images), "--out", str(out),
                     "--overlay", "0.01"]) == 0
    assert np.asarray(Image.open(out / "phone_pred.png")).shape == (60, 40, 3)
    for name in ("deep", "float"):
        overlay = np.asarray(Image.open(out / f"{name}_overlay.png")).astype(float)
        np.testing.assert_allclose(overlay[..., 0], ramp * 255, atol=4)

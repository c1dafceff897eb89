"""The safe image reader when it downscales while decoding, checks files cheaply, reads animations and writes PNGs."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import exif_rotated_jpeg, photo
from PIL import Image

from vitdeblur.images import ImageError, check_image, limit_megapixels, load_image, save_png


def test_downscaling_while_decoding_matches_downscaling_after(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(photo("astronaut", (900, 700))).save(path)
    direct = load_image(path, max_megapixels=0.05)
    after = limit_megapixels(load_image(path), 0.05)
    assert direct.size == after.size and direct.original_size == (900, 700)
    assert np.abs(direct.rgb - after.rgb).mean() < 0.005  # Lanczos in 8 bits rather than in float


def test_jpeg_draft_keeps_orientation_and_reports_the_upright_size(tmp_path):
    path = exif_rotated_jpeg(tmp_path / "phone.jpg", width=800, height=480)
    image = load_image(path, max_megapixels=0.02)
    assert image.original_size == (480, 800)
    assert image.size[1] > image.size[0] and image.size[0] * image.size[1] <= 20_000


def test_16_bit_grayscale_keeps_its_precision_when_downscaled(tmp_path):
    ramp = np.tile(np.linspace(1000, 1255, 600).astype(np.uint16), (400, 1))  # a dark ramp: all values under 256*5
    path = tmp_path / "gray16.png"
    Image.fromarray(ramp).save(path)
    image = load_image(path, max_megapixels=0.03)
    assert image.grayscale and image.size[0] * image.size[1] <= 30_000
    assert 1000 / 65535 - 1e-4 < image.rgb.min() and image.rgb.max() < 1255 / 65535 + 1e-4


def test_peak_memory_follows_the_megapixel_cap_not_the_source(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (9000, 9000), (90, 120, 200)).save(path)  # 81 megapixels in a few hundred KB
    script = textwrap.dedent(f"""
        from vitdeblur.images import load_image

        def peak_mb():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024

        before = peak_mb()
        image = load_image({str(path)!r}, max_megapixels=1.5)
        print(peak_mb() - before, peak_mb(), image.size[0] * image.size[1])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    rise_mb, peak_mb, pixels = map(float, result.stdout.split())
    assert pixels <= 1.5e6
    # The 8-bit decode alone is 243 MB; decoding to float first, as before, took the rise past 1 GB.
    assert rise_mb < 600, result.stdout
    assert peak_mb < 2048, result.stdout


def test_animated_gif_gives_its_first_frame_and_says_how_many(tmp_path):
    frames = [Image.new("RGB", (32, 24), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    image = load_image(tmp_path / "anim.gif")
    assert image.frames == 3
    assert image.rgb[0, 0, 0] > 0.9 and image.rgb[0, 0, 1] < 0.1


@pytest.mark.parametrize("limit", [-1, 0, float("nan"), float("inf")])
def test_megapixel_limit_must_be_a_positive_number(tmp_path, limit):
    path = tmp_path / "a.png"
    Image.new("RGB", (40, 30)).save(path)
    with pytest.raises(ValueError, match="must be a positive number"):
        load_image(path, max_megapixels=limit)


def test_check_image_finds_truncation_without_decoding(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(photo("coffee", (120, 90))).save(path)
    assert check_image(path) == (120, 90)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ImageError, match="cut.png: the file is corrupt or truncated"):
        check_image(path)


def test_save_png_never_replaces_without_overwrite(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="exists already"):
        save_png(Image.new("RGB", (8, 8)), target)
    assert target.read_bytes() == b"precious"
    save_png(Image.new("RGB", (8, 8)), target, overwrite=True)
    assert Image.open(target).size == (8, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary file left behind


def test_check_image_catches_a_truncated_jpeg(tmp_path):
    from conftest import photo

    Image.fromarray(photo("coffee", (200, 160))).save(tmp_path / "whole.jpg", quality=90)
    data = (tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[:len(data) // 2])
    assert check_image(tmp_path / "whole.jpg") == (200, 160)
    with pytest.raises(ImageError, match="corrupt or truncated"):
        check_image(tmp_path / "half.jpg")

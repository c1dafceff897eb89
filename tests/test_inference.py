import io
import math
import platform
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import exif_rotated_jpeg, photo, png_claiming, rgba_png, tiny_model
from PIL import Image

from vitdeblur import inference
from vitdeblur.images import ImageError, load_image
from vitdeblur.inference import cpu_bf16_copy, deblur_array, deblur_image, plan_tiles, resolve_precision


class Identity(torch.nn.Module):
    """Records the largest batch it saw, to check that memory use is bounded by the tile batch, and the pixels it
    was given in all."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.largest_input = 0
        self.pixels_seen = 0

    def forward(self, x):
        self.largest_input = max(self.largest_input, x.numel())
        self.pixels_seen += x.shape[0] * x.shape[-2] * x.shape[-1]
        return x.clone()


class LocalBlur(torch.nn.Module):
    """A purely local operator (3x3 box filter): tiled and whole-image results must agree away from the borders."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def test_tiling_reproduces_the_image_through_identity():
    rgb = photo("astronaut", (300, 210)).astype(np.float32) / 255
    out = deblur_array(Identity(), rgb, tile_size=64, tile_overlap=16, batch_size=3)
    assert out.shape == rgb.shape
    assert np.abs(out - rgb).max() < 1 / 255


def test_tiles_blend_without_seams():
    rgb = photo("coffee", (257, 190)).astype(np.float32) / 255
    whole = LocalBlur()(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    tiled = deblur_array(LocalBlur(), rgb, tile_size=64, tile_overlap=16)
    # Tile edges see replicate padding instead of their neighbours; feathering must hide that completely.
    assert np.abs(tiled - whole).max() < 1 / 255


def test_tiled_model_output_matches_small_image_path():
    model = tiny_model()
    torch.nn.init.normal_(model.decoder.head.weight, std=0.2)  # far from the identity, so misplaced tiles show
    rgb = photo("chelsea", (150, 100)).astype(np.float32) / 255
    single = deblur_array(model, rgb, tile_size=256)  # one tile
    assert np.abs(single - rgb).mean() > 0.02
    tiled = deblur_array(model, rgb, tile_size=64, tile_overlap=32)
    assert single.shape == tiled.shape == rgb.shape
    assert np.abs(single - tiled).mean() < 0.01


def test_memory_stays_bounded_for_8_megapixels():
    height, width = 2448, 3264  # 8 MP
    rgb = np.zeros((height, width, 3), np.float32)
    model = Identity()
    tracemalloc.start()
    deblur_array(model, rgb, tile_size=256, tile_overlap=32, batch_size=4)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert model.largest_input <= 4 * 3 * 256 * 256
    # Output and weight buffers are proportional to the image (<= 2.5x its float size), nothing per tile piles up.
    assert peak < 2.5 * rgb.nbytes


class Brighten(Identity):
    """Adds 0.1 everywhere: its correction is the same at every scale."""

    def forward(self, x):
        return super().forward(x) + 0.1


def test_several_scales_average_their_upsampled_corrections():
    rgb = photo("astronaut", (300, 210)).astype(np.float32) / 255 * 0.8
    # an identity at every scale changes nothing: the corrections are averaged, not the downscaled images
    same = deblur_array(Identity(), rgb, tile_size=64, tile_overlap=16, scales=(1, 2, 4))
    assert np.abs(same - rgb).max() < 1e-5
    # and the same correction at every scale is that correction, applied once
    once = Brighten()
    brighter = deblur_array(once, rgb, tile_size=64, tile_overlap=16)
    three = Brighten()
    done = []
    brighter3 = deblur_array(three, rgb, tile_size=64, tile_overlap=16, scales=(1, 2, 4),
                             progress=lambda n, total: done.append((n, total)))
    assert np.abs(brighter3 - brighter).max() < 1e-5 and np.abs(brighter - (rgb + 0.1)).max() < 1e-5
    assert 1.1 * once.pixels_seen < three.pixels_seen < 1.5 * once.pixels_seen  # about 1 + 1/4 + 1/16 of the work
    # progress counts the tiles of all three scales, to the end
    assert done[-1][0] == done[-1][1] and [n for n, _ in done] == sorted(n for n, _ in done)
    assert len({total for _, total in done}) == 1


def test_a_model_asks_for_its_own_scales_and_small_images_skip_the_smallest():
    model = tiny_model()
    torch.nn.init.normal_(model.decoder.head.weight, std=0.2)
    rgb = photo("chelsea", (300, 200)).astype(np.float32) / 255
    assert inference.scale_plan(model, 200, 300) == [(1, 200, 300)]
    model.config.inference_scales = (1, 2, 4)
    assert inference.scale_plan(model, 200, 300) == [(1, 200, 300), (2, 100, 150)]  # 200 / 4 < MIN_SCALED_SIDE
    assert inference.scale_plan(model, 200, 300, scales=(2,)) == [(2, 100, 150)]
    own = deblur_array(model, rgb, tile_size=64)
    assert np.array_equal(own, deblur_array(model, rgb, tile_size=64, scales=(1, 2)))
    assert not np.allclose(own, deblur_array(model, rgb, tile_size=64, scales=(1,)), atol=1e-3)
    with pytest.raises(ValueError, match="distinct whole factors"):
        deblur_array(model, rgb, scales=(1, 1))


def test_exif_orientation_is_applied(tmp_path):
    path = exif_rotated_jpeg(tmp_path / "phone.jpg", width=120, height=80)
    loaded = load_image(path)
    assert loaded.size == (80, 120)
    result = deblur_image(tiny_model(), path)
    assert result.size == (80, 120)


def test_rgba_keeps_alpha_and_size(tmp_path):
    path = rgba_png(tmp_path / "alpha.png", width=90, height=70)
    result = deblur_image(tiny_model(), path)
    assert result.mode == "RGBA" and result.size == (90, 70)
    assert np.array_equal(np.asarray(result)[..., 3], np.asarray(Image.open(path))[..., 3])


def test_grayscale_and_16_bit_inputs(tmp_path):
    gray = photo("camera", (100, 60))[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    for name in ("gray.png", "gray16.png"):
        loaded = load_image(tmp_path / name)
        assert loaded.grayscale and loaded.rgb.shape == (60, 100, 3)
        assert np.abs(loaded.rgb[..., 0] * 255 - gray).max() < 1
        result = deblur_image(tiny_model(), tmp_path / name)
        assert result.mode == "L" and result.size == (100, 60)


def test_palette_and_cmyk_inputs(tmp_path):
    rgb = photo("chelsea", (64, 48))
    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    for name in ("palette.png", "cmyk.jpg"):
        assert load_image(tmp_path / name).rgb.shape == (48, 64, 3)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"this is a text file, not a picture\n", "not an image"),
    ("truncated", "corrupt or truncated"),
    ("one_pixel", "too small"),
    (png_claiming(20000, 5000), "megapixels"),
    (png_claiming(100_000, 100_000), "megapixels"),
])
def test_bad_inputs_get_clear_errors(tmp_path, content, message):
    if content == "truncated":
        buf = io.BytesIO()
        Image.fromarray(photo("astronaut", (200, 200))).save(buf, format="JPEG")
        content = buf.getvalue()[: len(buf.getvalue()) // 2]
    elif content == "one_pixel":
        buf = io.BytesIO()
        Image.new("RGB", (1, 1)).save(buf, format="PNG")
        content = buf.getvalue()
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path)
    with pytest.raises(ImageError, match=message):
        load_image(content)


def test_the_size_limit_is_ours_not_pillows(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(png_claiming(10_000, 9_500))  # 95 MP: allowed, then found to hold no such data
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "nope.jpg")


def test_max_megapixels_downscales(tmp_path):
    result = deblur_image(tiny_model(), Image.fromarray(photo("astronaut", (400, 300))), max_megapixels=0.03)
    assert result.size[0] * result.size[1] <= 30_000
    assert abs(result.size[0] / result.size[1] - 4 / 3) < 0.05


@pytest.mark.parametrize("length", [64, 65, 100, 257, 300, 720, 1280, 3000, 4000])
def test_tile_plan_covers_the_image_with_less_waste(length):
    tile, overlap = 256 if length > 300 else 64, 32 if length > 300 else 16
    size, starts = plan_tiles(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] + size == length and size <= tile
    assert all(later - earlier <= size - overlap for earlier, later in zip(starts, starts[1:]))  # overlap kept
    fixed_tiles = math.ceil((length - overlap) / (tile - overlap)) if length > tile else 1  # the old plan's count
    assert len(starts) == fixed_tiles and len(starts) * size <= fixed_tiles * min(tile, length)
    if length > tile:
        assert size % 16 == 0


def test_tile_plan_shrinks_tiles_of_a_720p_frame():
    assert plan_tiles(720, 256, 32) == (208, [0, 171, 341, 512])  # 4 tiles of 208 instead of 256
    assert plan_tiles(1280, 256, 32)[0] == 240


def test_precision_resolution(monkeypatch):
    assert resolve_precision("fp32", "cpu") is None
    assert resolve_precision("bf16", "cpu") is torch.bfloat16
    monkeypatch.setattr(inference, "fast_bf16_cpu_flags", lambda: ["amx_bf16"])
    assert resolve_precision("auto", "cpu") is torch.bfloat16
    monkeypatch.setattr(inference, "fast_bf16_cpu_flags", lambda: [])
    assert resolve_precision("auto", "cpu") is None
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", "cpu")


def test_bf16_result_is_close_to_fp32():
    model = tiny_model()
    torch.nn.init.normal_(model.decoder.head.weight, std=0.05)
    rgb = photo("astronaut", (150, 100)).astype(np.float32) / 255
    fp32 = deblur_array(model, rgb, precision="fp32")
    bf16 = deblur_array(model, rgb, precision="bf16")
    assert np.abs(fp32 - rgb).mean() > 0.005  # the model does change the image
    assert 0 < np.abs(bf16 - fp32).mean() < 0.002  # bf16 really ran, and changes little


def test_the_cpu_bf16_copy_is_reused_until_the_weights_change():
    model = tiny_model("nafnet")
    rgb = photo("astronaut", (96, 80)).astype(np.float32) / 255
    copy = cpu_bf16_copy(model)
    assert cpu_bf16_copy(model) is copy and next(copy.parameters()).dtype == torch.bfloat16
    before = deblur_array(model, rgb, precision="bf16")
    with torch.no_grad():
        model.decoder.head.weight.mul_(3)  # as a training step would
    assert cpu_bf16_copy(model) is not copy
    after = deblur_array(model, rgb, precision="bf16")
    assert np.abs(after - before).mean() > 0.002
    assert np.abs(after - deblur_array(model, rgb, precision="fp32")).mean() < 0.002


REUSE_LARGE_BLOCKS = """
import resource, sys, torch
from vitdeblur.inference import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "retain" else None
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(16):  # 40 MB each: above glibc's largest automatic mmap threshold (32 MiB)
    torch.empty(10 << 20).fill_(1)  # allocated, touched and freed, as a layer's activation is
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
@pytest.mark.skipif(huge_pages_always(), reason="the kernel maps large blocks in 2 MiB pages: few faults to count")
def test_retained_memory_is_reused_without_page_faults():
    def page_faults(mode):
        out = subprocess.run([sys.executable, "-c", REUSE_LARGE_BLOCKS, mode], capture_output=True, text=True,
                             check=True, cwd=Path(__file__).resolve().parent.parent).stdout.split()
        return out[0], int(out[1])

    _, default_faults = page_faults("default")
    applied, faults = page_faults("retain")
    assert applied == "True"
    assert default_faults > 16 * 9000  # every block comes from the system as 10k untouched 4 KiB pages
    assert faults < default_faults / 3  # here: the first two or three blocks only

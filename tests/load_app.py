"""Load check of the app (not a test; pytest does not collect it): starts `python app.py` on 127.0.0.1, sends N
concurrent /deblur calls of a ~1 MP photo plus a few bad files and an 81-megapixel PNG, and prints the failures,
p50/p95 latency of the good calls and the server's peak RSS.

    python tests/load_app.py [--calls 20] [--variant adam] [--timeout-min 20]

It uses the shipped checkpoints unless VITDEBLUR_ADAM / VITDEBLUR_SGD say otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image
from skimage import data as skdata

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_inputs(folder: Path) -> tuple[Path, dict[str, Path]]:
    """A ~1 MP photo, and bad files each with the words its error message must contain."""
    photo = folder / "photo.jpg"
    Image.fromarray(skdata.astronaut()).resize((1200, 860), Image.Resampling.BICUBIC).save(photo, quality=92)
    (folder / "text.png").write_text("not a picture\n")
    photo.with_name("truncated.jpg").write_bytes(photo.read_bytes()[:20_000])
    huge = folder / "huge.png"
    Image.new("RGB", (9000, 9000), (90, 120, 200)).save(huge)  # 81 MP: accepted, decoded to the megapixel cap
    return photo, {"not an image": folder / "text.png", "truncated": folder / "truncated.jpg", "": huge}


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "TMPDIR": str(folder)}
    log = open(folder / "server.log", "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return process, url
        except OSError:
            time.sleep(1)
    stop(process)
    raise SystemExit(f"app.py did not start; see {folder / 'server.log'}")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # the session started above: app.py only
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20, choices=range(1, 201), metavar="1..200")
    parser.add_argument("--variant", default="adam", choices=("adam", "sgd", "both"))
    parser.add_argument("--timeout-min", type=float, default=20, help="give up on calls not done by then")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo, bad_files = make_inputs(folder)
        width, height = Image.open(photo).size
        process, url = start_server(folder)
        try:
            client = Client(url, verbose=False)

            def call(path: Path) -> tuple[float, str | None]:
                start = time.perf_counter()
                try:
                    client.predict(handle_file(str(path)), args.variant, api_name="/deblur")
                    return time.perf_counter() - start, None
                except Exception as e:  # every failure is counted and printed, whatever it is
                    return time.perf_counter() - start, f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"

            paths = [photo] * args.calls + list(bad_files.values())
            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(paths)) as pool:
                futures = [pool.submit(call, path) for path in paths]
                results = [f.result(timeout=args.timeout_min * 60) for f in futures]
            wall = time.perf_counter() - started
            rss = peak_rss_mb(process.pid)
        finally:
            stop(process)

    good = results[:args.calls]
    failures = [error for _, error in good if error]
    for (_, error), (expected, path) in zip(results[args.calls:], bad_files.items()):
        if expected and (error is None or expected not in error):
            failures.append(f"{path.name}: expected an error saying {expected!r}, got {error!r}")
        elif not expected and error:
            failures.append(f"{path.name}: {error}")
    latencies = np.array([seconds for seconds, error in good if not error])
    print(f"{args.calls} concurrent /deblur calls ({args.variant}) of a {width}x{height} JPEG, plus "
          f"{len(bad_files)} other files (text, truncated JPEG, 81 MP PNG)")
    for failure in failures:
        print(f"FAILED {failure}")
    if len(latencies):
        print(f"latency p50 {np.percentile(latencies, 50):.1f} s, p95 {np.percentile(latencies, 95):.1f} s; "
              f"all done in {wall:.0f} s")
    print(f"failures: {len(failures)}; server peak RSS {rss:.0f} MB")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

"""ViTDeblur demo: upload a blurred photo (or pick an example) and compare the adam and sgd checkpoints side by side.

    python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT change it)

Checkpoints: checkpoints/adam and checkpoints/sgd by default (offline). VITDEBLUR_ADAM / VITDEBLUR_SGD name another
folder or a Hugging Face Hub repo id per variant; VITDEBLUR_CHECKPOINTS names another folder holding adam/ and sgd/.
Runs on CUDA when present, else CPU; on a ZeroGPU Space the deblur function runs under ``spaces.GPU``.

API (gradio_client):

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    outputs = client.predict(handle_file("photo.jpg"), "both", api_name="/deblur")

Inputs: image (file), variant ("adam", "sgd" or "both"), and optionally max_megapixels (larger inputs are
downscaled first; default 1.5 on CPU, 12 on CUDA). Outputs, in order: blurred input, deblurred adam, deblurred sgd,
ground truth (each a PNG path, or None when not produced), before/after pairs for adam and sgd, the report (Markdown),
the full-resolution deblurred PNG files, and a details dict (metrics, seconds, device, sizes).
"""

from __future__ import annotations

import html
import logging

import gradio as gr
import torch

from vitdeblur import CheckpointError, ImageError, app_logic, examples

try:  # ZeroGPU Spaces: the decorated function gets a GPU for the duration of each call
    import spaces

    gpu = spaces.GPU
except ImportError:
    spaces = None

    def gpu(fn):
        return fn

log = logging.getLogger("vitdeblur.app")

MODELS = app_logic.Models()
if spaces is not None:  # on Spaces load at startup (ZeroGPU runs each call in a fresh worker); elsewhere on first use
    for _variant in app_logic.VARIANTS:
        try:
            MODELS.get(_variant)
        except CheckpointError as e:
            log.warning("%s", e)
DEVICE_KIND = "cuda" if MODELS.device.startswith("cuda") else "cpu"
DEFAULT_MAX_MEGAPIXELS = app_logic.DEFAULT_MAX_MEGAPIXELS[DEVICE_KIND]
EXAMPLES = examples.list_examples()
PANEL_HEIGHT = 340


def pass_upload_untouched(image: gr.Image) -> gr.Image:
    """Hand the uploaded file (or a base64 data: URL, as the API and a pasted image send it) to the package as it is.
    Gradio's own preprocessing opens it with Pillow first (so a corrupt file fails before our clear error message)
    and re-encodes it (as lossy WebP, dropping alpha, grayscale or 16-bit depth). Overridden on the instance rather
    than in a subclass: Gradio writes a .pyi stub beside any module that defines a component subclass."""

    def preprocess(payload):
        if payload is None:
            return None
        return str(payload.path) if payload.path else payload.url

    image.preprocess = preprocess
    return image


@gpu
def deblur(image: str | None, variant: str = "both", max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
           progress=gr.Progress()):
    """Deblur `image` with variant "adam", "sgd" or "both"; larger inputs are first downscaled to max_megapixels."""
    if not image:
        raise gr.Error("Upload a photo or pick an example first.", print_exception=False)
    try:
        outcome = app_logic.deblur(image, variant, MODELS, max_megapixels,
                                   progress=lambda fraction, message: progress(fraction, desc=message))
    except (ImageError, CheckpointError, ValueError) as e:  # messages written for the user
        raise gr.Error(html.escape(str(e)), title="Cannot deblur this", print_exception=False) from None
    except torch.OutOfMemoryError:
        raise gr.Error("Out of memory: lower the megapixel limit and try again.", print_exception=False) from None
    except Exception as e:  # anything unexpected: log it here, show a short message there, keep serving
        log.exception("deblurring failed")
        raise gr.Error(f"Deblurring failed unexpectedly ({type(e).__name__}); the details are in the server log.",
                       print_exception=False) from None
    paths = app_logic.save_outputs(outcome, app_logic.results_folder())
    # Plain values (None for what was not produced), so that API users get paths rather than UI updates;
    # show_panels() then hides the empty panels in the page.
    panels = [paths.get(v) for v in app_logic.VARIANTS]
    sliders = [(paths["blurred"], paths[v]) if v in paths else None for v in app_logic.VARIANTS]
    downloads = [paths[v] for v in outcome.restored]
    return (paths["blurred"], *panels, paths.get("ground_truth"), *sliders, app_logic.metrics_markdown(outcome),
            downloads, outcome.summary())


def show_panels(details: dict | None):
    """Show the panels and sliders of the variants that ran, and the ground truth when there was one."""
    details = details or {}
    ran = details.get("variants", [])
    panels = [gr.Image(visible=v in ran) for v in app_logic.VARIANTS]
    sliders = [gr.ImageSlider(visible=v in ran) for v in app_logic.VARIANTS]
    return (*panels, gr.Image(visible=bool(details.get("ground_truth"))), *sliders)


def _panel(label: str, elem_id: str, visible: bool = True) -> gr.Image:
    # format="png": Gradio would otherwise re-encode images as lossy webp and blur the comparison
    return gr.Image(label=label, elem_id=elem_id, format="png", type="filepath", interactive=False,
                    height=PANEL_HEIGHT, visible=visible, buttons=["download", "fullscreen"])


with gr.Blocks(title="ViTDeblur", delete_cache=(3600, 3600)) as demo:
    gr.Markdown("# ViTDeblur: image deblurring with a Vision Transformer\n"
                "Upload a blurred photo or pick an example, choose a variant, and compare the blurred input, the "
                "deblurred result of each variant and (for the examples) the sharp ground truth.")
    with gr.Row():
        with gr.Column(scale=2):
            image_input = pass_upload_untouched(gr.Image(
                label="Blurred photo", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                elem_id="input-image", height=PANEL_HEIGHT))
        with gr.Column(scale=1):
            variant_input = gr.Radio(list(app_logic.CHOICES), value="both", label="Variant", elem_id="variant",
                                     info="adam: Adam + L1 loss; sgd: SGD + MSE loss; both: side by side")
            megapixels_input = gr.Slider(0.1, app_logic.MAX_MEGAPIXELS_LIMIT[DEVICE_KIND], value=DEFAULT_MAX_MEGAPIXELS,
                                         step=0.05, label="Max resolution (megapixels)", elem_id="max-megapixels",
                                         info="larger photos are downscaled first; higher is slower "
                                              f"(running on {app_logic.describe_device(MODELS.device)})")
            run_button = gr.Button("Deblur", variant="primary", elem_id="run")
    gr.Examples(examples=[[str(e.blurred)] for e in EXAMPLES], inputs=[image_input],
                example_labels=[e.label for e in EXAMPLES], cache_examples=False, examples_per_page=12,
                label="Examples (synthetic blur with ground truth, and one real camera-shake photo)")
    with gr.Row(equal_height=True):
        blurred_panel = _panel("Blurred input", "panel-blurred")
        variant_panels = [_panel(f"Deblurred ({v})", f"panel-{v}") for v in app_logic.VARIANTS]
        truth_panel = _panel("Ground truth", "panel-truth", visible=False)
    with gr.Row():
        sliders = [gr.ImageSlider(label=f"Before / after ({v})", elem_id=f"slider-{v}", format="png", type="filepath",
                                  max_height=600) for v in app_logic.VARIANTS]
    report = gr.Markdown(label="Report", elem_id="report")
    downloads = gr.File(label="Download the deblurred PNGs (at the processed size, lossless)", file_count="multiple",
                        interactive=False, height=120, elem_id="downloads")
    with gr.Accordion("Details (JSON)", open=False):
        details = gr.JSON(label="Details", elem_id="details")
    gr.Markdown(app_logic.TRAINING_NOTE)

    run_button.click(
        deblur, inputs=[image_input, variant_input, megapixels_input],
        outputs=[blurred_panel, *variant_panels, truth_panel, *sliders, report, downloads, details],
        api_name="deblur", concurrency_limit="default",
        api_description="Deblur an image with variant 'adam', 'sgd' or 'both'; max_megapixels is optional.",
    ).success(show_panels, inputs=[details], outputs=[*variant_panels, truth_panel, *sliders],
              queue=False, api_visibility="private")

# One deblur at a time (each uses every core, or the GPU); up to queue_size() wait, each shown its place in the queue.
demo.queue(default_concurrency_limit=1, max_size=app_logic.queue_size())

# max_file_size: larger uploads are refused before they reach the disk.
LAUNCH_OPTIONS = dict(allowed_paths=[str(examples.EXAMPLES_DIR)], max_file_size=app_logic.max_upload_bytes())

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)

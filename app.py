"""ViTDeblur demo: upload a blurred photo (or pick an example) and compare the adam and sgd checkpoints side by side.

    python app.py        # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT change it)

Checkpoints: checkpoints/adam and checkpoints/sgd by default (offline). VITDEBLUR_ADAM / VITDEBLUR_SGD name another
folder or a Hugging Face Hub repo id per variant; VITDEBLUR_CHECKPOINTS names another folder holding adam/ and sgd/.
VITDEBLUR_PRECISION: auto (default: bf16 on CPUs with fast bf16 and on CUDA, else fp32), fp32 or bf16.
Runs on CUDA when present, else CPU; on a ZeroGPU Space the deblur function runs under ``spaces.GPU``.

API (gradio_client):

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860/")
    outputs = client.predict(handle_file("photo.jpg"), "both", api_name="/deblur")
    outputs = client.predict(handle_file("sharp.jpg"), "both", 15, 30, 0, 0, 2, 0, api_name="/blur_and_deblur")

Inputs: image (file), variant ("adam", "sgd" or "both"), and optionally max_megapixels (larger inputs are
downscaled first; default 12). Outputs, in order: blurred input, deblurred adam, deblurred sgd,
ground truth (each a PNG path, or None when not produced), before/after pairs for adam and sgd, the report (Markdown),
the full-resolution deblurred PNG files, and a details dict (metrics, seconds, device, sizes). /blur_and_deblur
takes a sharp photo, the variant and the blur (motion length px, motion angle degrees, camera shake px, defocus
radius px, noise in grey levels, seed; then max_megapixels), blurs it and returns the same outputs, with the photo as
the ground truth.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path

import gradio as gr
import torch
from PIL import Image

from vitdeblur import CheckpointError, ImageError, app_logic, examples
from vitdeblur.loupe import loupe_box, loupe_crops, most_changed_point
from vitdeblur.inference import retain_freed_memory, use_available_cores

try:  # ZeroGPU Spaces: the decorated function gets a GPU for the duration of each call
    import spaces

    gpu = spaces.GPU
except ImportError:
    spaces = None

    def gpu(fn):
        return fn

log = logging.getLogger("vitdeblur.app")

use_available_cores()
retain_freed_memory()
MODELS = app_logic.Models()
if spaces is not None:  # on Spaces load at startup (ZeroGPU runs each call in a fresh worker); elsewhere on first use
    for _variant in app_logic.VARIANTS:
        try:
            MODELS.get(_variant)
        except CheckpointError as e:
            log.warning("%s", e)
DEVICE_KIND = MODELS.speed_kind
DEFAULT_MAX_MEGAPIXELS = app_logic.DEFAULT_MAX_MEGAPIXELS[DEVICE_KIND]
EXAMPLES = examples.list_examples()
PANEL_HEIGHT = 300


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


# Everything a run puts on the page, in the order of the API's outputs (see the module docstring)
RESULT_KEYS = ("blurred", *app_logic.VARIANTS, "ground_truth")


class user_errors:
    """Turn the package's errors (messages written for users) into page messages; log anything unexpected here and
    show a short message there, so the server keeps serving and its log holds the one traceback that matters."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if error is None or isinstance(error, gr.Error):
            return False
        if isinstance(error, (ImageError, CheckpointError, ValueError)):
            # In the message, not in Error(title=...): Gradio 6's toast shows its own "Error" title instead
            raise gr.Error(f"Cannot deblur this: {html.escape(str(error))}", print_exception=False) from None
        if isinstance(error, torch.OutOfMemoryError):
            raise gr.Error("Out of memory: lower the megapixel limit and try again.", print_exception=False) from None
        if isinstance(error, Exception):
            log.error("deblurring failed", exc_info=(kind, error, traceback))
            raise gr.Error(f"Deblurring failed unexpectedly ({kind.__name__}); the details are in the server log.",
                           print_exception=False) from None
        return False


def page_outputs(outcome: app_logic.Outcome) -> tuple:
    """Plain values (None for what was not produced), so that API users get paths rather than UI updates;
    show_results() then shows the panels that have something and fills the loupe and heat maps."""
    paths = app_logic.save_outputs(outcome, app_logic.results_folder())
    panels = [paths.get(v) for v in app_logic.VARIANTS]
    sliders = [(paths["blurred"], paths[v]) if v in paths else None for v in app_logic.VARIANTS]
    downloads = [paths[v] for v in outcome.restored]
    return (paths["blurred"], *panels, paths.get("ground_truth"), *sliders, app_logic.metrics_markdown(outcome),
            downloads, outcome.summary())


def _progress_callback(progress):
    return lambda fraction, message: progress(fraction, desc=message)


@gpu
def deblur(image: str | None, variant: str = "both", max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
           progress=gr.Progress()):
    """Deblur `image` with variant "adam", "sgd" or "both"; larger inputs are first downscaled to max_megapixels."""
    if not image:
        raise gr.Error("Upload a photo or pick an example first.", print_exception=False)
    with user_errors():
        outcome = app_logic.deblur(image, variant, MODELS, max_megapixels, progress=_progress_callback(progress))
        return page_outputs(outcome)


def deblur_example(image: str):
    """What an example click runs (and Gradio caches): both variants at the default megapixel limit."""
    return deblur(image, "both", DEFAULT_MAX_MEGAPIXELS, progress=lambda *args, **kwargs: None)


@gpu
def blur_and_deblur(image: str | None, variant: str = "both", motion_length: float = 15.0, motion_angle: float = 0.0,
                    shake: float = 0.0, defocus_radius: float = 0.0, noise: float = 0.0, seed: int = 0,
                    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS, progress=gr.Progress()):
    """Blur a sharp photo with the chosen blur (motion length in px and angle in degrees, camera-shake extent in px,
    defocus radius in px, noise sigma in grey levels; seed fixes shake and noise), then deblur it: the photo is the
    ground truth, so PSNR/SSIM are measured. Same outputs as /deblur."""
    if not image:
        raise gr.Error("Upload a sharp photo or pick one of the sharp examples first.", print_exception=False)
    with user_errors():
        settings = app_logic.BlurSettings(motion_length, motion_angle, shake, defocus_radius, noise, int(seed or 0))
        outcome = app_logic.blur_and_deblur(image, variant, MODELS, settings, max_megapixels,
                                            progress=_progress_callback(progress))
        return page_outputs(outcome)


PANEL_CAPTIONS = ["blurred", *(app_logic.VARIANT_LABELS[v] for v in app_logic.VARIANTS), "ground truth"]


def _open_panels(paths: list[str | None]) -> list[Image.Image | None]:
    """The result panels' images in page order (None where a panel is empty), each file read once per event."""
    return [Image.open(path) if path else None for path in paths]


def loupe_view(opened: list[Image.Image | None], zoom: int, centre: tuple[float, float] | None):
    """The loupe gallery, its caption and its centre, from the panels' images (_open_panels); centre None = where the
    variants changed the image most."""
    images = [(caption, image) for caption, image in zip(PANEL_CAPTIONS, opened) if image is not None]
    if not images:
        return None, "", None
    size = images[0][1].size
    side = app_logic.loupe_side(size, zoom)
    if centre is None:
        restored = [image for image in opened[1:1 + len(app_logic.VARIANTS)] if image is not None]
        centre = most_changed_point(images[0][1], restored, side)
    box = loupe_box(size, centre, side)
    caption = (f"Region {box[2] - box[0]}x{box[3] - box[1]} px at ({box[0]}, {box[1]}) of {size[0]}x{size[1]}, "
               f"enlarged {zoom}x. Click a point on any full-size panel above to move it.")
    return loupe_crops(images, box, zoom), caption, list(centre)


def show_results(blurred, adam, sgd, truth, zoom):
    """After a run: show the panels that have an image, the loupe on the most-changed region and the heat maps."""
    paths = [blurred, adam, sgd, truth]
    opened = _open_panels(paths)
    blurred_image = opened[0]
    restored = {v: image for v, image in zip(app_logic.VARIANTS, opened[1:]) if image is not None}
    heatmaps = app_logic.change_heatmaps(blurred_image, restored) if blurred_image is not None else None
    loupe, caption, centre = loupe_view(opened, int(zoom), None)
    visible = [bool(p) for p in paths]
    # panoramas get wider panels (two per row, one on a phone): four abreast, they were 20-50 px high strips
    wide = blurred_image is not None and app_logic.is_panorama(blurred_image.size)
    return (gr.Column(visible=bool(blurred), elem_classes=["panorama"] if wide else []),
            gr.Markdown(visible=not blurred),
            *[gr.Image(visible=v) for v in visible],
            *[gr.ImageSlider(visible=bool(p)) for p in (adam, sgd)],
            loupe, caption, centre, heatmaps)


def move_loupe(blurred, adam, sgd, truth, zoom, evt: gr.SelectData):
    """A click on a full-size panel: centre the loupe on that point (all panels share one size)."""
    return loupe_view(_open_panels([blurred, adam, sgd, truth]), int(zoom), tuple(evt.index))[:3]


def zoom_loupe(blurred, adam, sgd, truth, zoom, centre):
    return loupe_view(_open_panels([blurred, adam, sgd, truth]), int(zoom), tuple(centre) if centre else None)[:3]


def check_upload(path):
    """An uploaded file that is no usable image: say why at once and empty the input, which would otherwise show a
    broken preview until Run refused it. One that browsers cannot show (a TIFF...): a PNG of the same pixels stands in
    for it, so that the preview shows the photo."""
    problem = app_logic.upload_problem(path)
    if problem is not None:
        gr.Warning(problem)
        return None
    preview = app_logic.browser_preview(path)
    return gr.skip() if preview is None else str(preview)


def clear_results():
    """A new input (or a failed run): nothing on the page may belong to another photo."""
    return (gr.Column(visible=False), gr.Markdown(visible=True), *[None] * len(RESULT_KEYS),
            *[None] * len(app_logic.VARIANTS), None, None, None, None, "", None, None)


def name_its_refusals(component: gr.components.Component) -> gr.components.Component:
    """Gradio refuses an API value out of a slider's range or a radio's choices with a message that names no setting
    ("Value 999 is greater than maximum value 64.") and a traceback in the server log: name the setting, no
    traceback. Overridden on the instance, as in pass_upload_untouched."""
    preprocess = component.preprocess

    def checked(payload):
        try:
            return preprocess(payload)
        except gr.Error as e:
            raise gr.Error(f"{component.label}: {e.message}", print_exception=False) from None

    component.preprocess = checked
    return component


def _panel(label: str, elem_id: str, visible: bool = True) -> gr.Image:
    # format="png": Gradio would otherwise re-encode images as lossy webp and blur the comparison
    return gr.Image(label=label, elem_id=elem_id, format="png", type="filepath", interactive=False,
                    height=PANEL_HEIGHT, visible=visible, buttons=["download", "fullscreen"], render=False)


def _file_link(path: Path, text: str) -> str:
    # LAUNCH_OPTIONS allows exactly these files; a Space links the Hub's rendered page instead of the raw Markdown
    return f"[{text}]({app_logic.document_url(path, PROJECT_README.parent)})"


def links_markdown() -> str:
    cards = [_file_link(folder / "README.md", f"{app_logic.VARIANT_LABELS[v]} model card")
             for v, folder in CHECKPOINT_FOLDERS.items() if (folder / "README.md").is_file()]
    return " · ".join([_file_link(PROJECT_README, "Project README"), *cards,
                       "the study: *Exploring Image Restoration Techniques: The Application of ViTDeblur* (2024), "
                       "whose model and recipes this follows"])


PROJECT_README = Path(__file__).resolve().parent / "README.md"
CHECKPOINT_FOLDERS = {v: folder for v in app_logic.VARIANTS
                      if (folder := app_logic.local_checkpoint_folder(MODELS, v)) is not None}
TRAINING_NOTE = app_logic.training_note({v: app_logic.checkpoint_facts(f) for v, f in CHECKPOINT_FOLDERS.items()})
# Lazily cached example results are only valid for these checkpoints, settings and code: a folder named by their
# digest says which. Always set (under a given $GRADIO_EXAMPLES_CACHE, not instead of it): an app started from a
# process that already set it, with other checkpoints, must not serve that process's cached results.
os.environ["GRADIO_EXAMPLES_CACHE"] = str(app_logic.examples_cache_folder(
    [MODELS.spec(v) for v in app_logic.VARIANTS], f"{DEFAULT_MAX_MEGAPIXELS:g} MP, {MODELS.precision}, {MODELS.device}",
    [Path(__file__), *sorted(Path(app_logic.__file__).parent.glob("*.py"))], os.environ.get("GRADIO_EXAMPLES_CACHE")))

CSS = """
#result-panels img, #input-image img, #sharp-image img { object-fit: contain; }
.loupe-caption p, .hint p { font-size: 0.9em; opacity: 0.8; }
/* the controls' explanations in readable grey (the theme's was 1.9:1 against white) */
.info-text { color: color-mix(in srgb, var(--body-text-color) 75%, transparent) !important; }
#loupe .grid-wrap, #heatmaps .grid-wrap { height: auto !important; min-height: 0 !important; }  /* no empty frame */
/* the loupe's and heat maps' captions (which panel; each variant's mean change) in full under the picture, not cut
   over it */
#heatmaps .grid-wrap, #loupe .grid-wrap { max-height: none !important; overflow: visible !important; }
#heatmaps .gallery-item, #heatmaps .thumbnail-item, #heatmaps .thumbnail-item img, #loupe .gallery-item,
#loupe .thumbnail-item { height: auto !important; aspect-ratio: auto !important; overflow: visible !important; }
#heatmaps .thumbnail-item img { max-height: 600px; }
#heatmaps .caption-label, #loupe .caption-label { position: static !important; max-width: none !important;
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; }
#results.panorama #result-panels { flex-wrap: wrap !important; }
#results.panorama #result-panels > * { min-width: calc(50% - 8px) !important; flex: 0 1 calc(50% - 8px) !important;
  height: auto !important; }
#results.panorama #result-panels .image-container, #results.panorama #result-panels .image-frame,
#results.panorama #result-panels img { height: auto !important; }
/* the blur settings sit two to a row: a narrower number box leaves their names room for one line on a desktop; where
   there is not room for both, the number box moves under the name rather than breaking the name in two */
.blur-setting input[type="number"] { width: 4.5em; }
.blur-setting .head { flex-wrap: wrap; row-gap: 4px; }
.blur-setting .head label { white-space: nowrap; }
.blur-setting .head .tab-like-container { margin-left: auto; }
/* a read-only list: its "remove" buttons only took the links away */
#downloads .label-clear-button { display: none; }
@media (max-width: 640px) {
  /* a phone: two result panels per row, shorter frames and smaller thumbnails, so that the input, the variant
     choice and the first result fit within two screens */
  #intro h1 { font-size: 1.4em; }
  #result-panels { flex-wrap: wrap !important; }
  #result-panels > * { min-width: calc(50% - 8px) !important; flex: 0 1 calc(50% - 8px) !important; }
  #result-panels > .block { height: auto !important; }
  #result-panels .image-container, #result-panels .image-frame, #result-panels img {
    height: auto !important; max-height: 200px; }
  /* the panels' names in full ("Adam + L1 (adam)" was cut by the buttons): no icon before them and no download
     button (the deblurred PNGs are in the download list below, the other two panels show the photos given); the
     full-screen button stays */
  #result-panels label[data-testid="block-label"] > span, #result-panels .download-link { display: none; }
  #input-image, #sharp-image { height: 240px !important; }
  #examples .gallery-item .container, #examples .gallery-item img, #sharp-examples .gallery-item .container,
  #sharp-examples .gallery-item img { width: 52px !important; height: 52px !important; }
  /* tables scroll sideways rather than break numbers and words in the middle */
  #report table, #training-note table { display: block; overflow-x: auto;
    /* a shadow at an edge with more columns behind it, so that the sideways scroll is seen (Lea Verou's scrolling
       shadows: the covers move with the content, the shadows stay with the box) */
    background-image: linear-gradient(to right, var(--body-background-fill) 30%, transparent),
      linear-gradient(to left, var(--body-background-fill) 30%, transparent),
      radial-gradient(farthest-side at 0 50%, rgba(0, 0, 0, 0.25), transparent),
      radial-gradient(farthest-side at 100% 50%, rgba(0, 0, 0, 0.25), transparent);
    background-position: 0 0, 100% 0, 0 0, 100% 0; background-repeat: no-repeat;
    background-size: 40px 100%, 40px 100%, 14px 100%, 14px 100%; background-attachment: local, local, scroll, scroll; }
  #report th, #report td, #training-note th, #training-note td { white-space: nowrap; word-break: normal; }
  #results.panorama #result-panels > * { min-width: 100% !important; flex-basis: 100% !important; }
  /* the loupe's four crops as a 2x2 grid that fits the screen */
  #loupe .grid-container { grid-template-columns: repeat(2, minmax(0, 1fr)) !important; }
  #loupe .gallery-item, #loupe .thumbnail-item { width: 100% !important; height: auto !important; }
  #loupe .thumbnail-item img { aspect-ratio: 1; height: auto !important; }
  /* download names wrap rather than end in "...", which hid which variant each file is */
  #downloads .filename .ext { display: none; }  /* all are PNGs, as the list's label says; more room for the name */
  #downloads .filename, #downloads .filename .stem { white-space: normal !important; overflow-wrap: anywhere;
    text-overflow: clip !important; overflow: visible !important; }
}
"""

# The result components are made before the layout (and placed with .render()) because the examples, above them on
# the page, must name them as their outputs.
blurred_panel = _panel("Blurred input", "panel-blurred")
variant_panels = [_panel(app_logic.VARIANT_LABELS[v], f"panel-{v}") for v in app_logic.VARIANTS]
truth_panel = _panel("Ground truth", "panel-truth", visible=False)
# Gradio's example cache writes an empty image as "" and then cannot read it back (a JSONDecodeError, and the click
# showed nothing): the real camera-shake example has no ground truth.
truth_panel.read_from_flag = lambda payload: None if payload == "" else gr.Image.read_from_flag(truth_panel, payload)
sliders = [gr.ImageSlider(label=f"Blurred (left) | {app_logic.VARIANT_LABELS[v]} (right)", elem_id=f"slider-{v}",
                          format="png", type="filepath", max_height=600, render=False) for v in app_logic.VARIANTS]
report = gr.Markdown(label="Metrics and timings (Markdown)", show_label=False, elem_id="report", render=False)
downloads = gr.File(label="Download the deblurred PNGs (at the processed size, lossless)", file_count="multiple",
                    interactive=False, elem_id="downloads", render=False)
details = gr.JSON(label="Details", elem_id="details", render=False)
result_outputs = [blurred_panel, *variant_panels, truth_panel, *sliders, report, downloads, details]

with gr.Blocks(title="ViTDeblur", delete_cache=(3600, 3600)) as demo:
    gr.Markdown("# ViTDeblur: image deblurring with a Vision Transformer\n"
                "Deblur a blurred photo (or an example), or blur your own sharp photo to see how close the models "
                "get to it. " + links_markdown(), elem_id="intro")
    with gr.Tabs(elem_id="modes", overflow_behavior="wrap"):
        with gr.Tab("Deblur a photo", id="deblur-tab") as deblur_tab:
            with gr.Row():
                with gr.Column(scale=3, min_width=280):
                    image_input = pass_upload_untouched(gr.Image(
                        label="Blurred photo", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                        elem_id="input-image", height=PANEL_HEIGHT))
                with gr.Column(scale=2, min_width=280):
                    variant_input = gr.Radio(app_logic.CHOICE_LABELS, value="both", label="Variant", elem_id="variant",
                                             info=app_logic.VARIANT_EXPLANATION)
                    run_button = gr.Button("Deblur", variant="primary", elem_id="run")
                    example_gallery = gr.Examples(
                        examples=[[str(e.blurred)] for e in EXAMPLES], inputs=[image_input], fn=deblur_example,
                        outputs=result_outputs,
                        cache_examples=True, cache_mode="lazy", examples_per_page=12, elem_id="examples",
                        label="Examples: click one to run both variants (ground truth for all but the real "
                              "camera-shake clock)")
        with gr.Tab("Blur your own sharp photo", id="blur-tab") as blur_tab:
            with gr.Row():
                with gr.Column(scale=3, min_width=280):
                    sharp_input = pass_upload_untouched(gr.Image(
                        label="Sharp photo (it becomes the ground truth)", type="filepath", image_mode=None,
                        sources=["upload", "clipboard"], elem_id="sharp-image", height=PANEL_HEIGHT))
                with gr.Column(scale=2, min_width=280):
                    with gr.Row():
                        motion_length_input = gr.Slider(0, app_logic.MAX_BLUR_PX, value=15, step=1,
                                                        label="Motion length (px)", elem_id="motion-length",
                                                        elem_classes=["blur-setting"])
                        motion_angle_input = gr.Slider(0, 180, value=0, step=5, label="Motion angle (°)",
                                                       elem_id="motion-angle", elem_classes=["blur-setting"])
                    with gr.Row():
                        shake_input = gr.Slider(0, app_logic.MAX_BLUR_PX, value=0, step=1, label="Camera shake (px)",
                                                elem_id="shake", elem_classes=["blur-setting"])
                        defocus_input = gr.Slider(0, 20, value=0, step=0.5, label="Defocus radius (px)",
                                                  elem_id="defocus", elem_classes=["blur-setting"])
                    with gr.Row():
                        noise_input = gr.Slider(0, 20, value=2, step=0.5, label="Noise (grey levels)",
                                                elem_id="noise", elem_classes=["blur-setting"])
                        seed_input = gr.Number(0, precision=0, label="Seed (shake path, noise)", elem_id="seed")
                    blur_variant_input = gr.Radio(app_logic.CHOICE_LABELS, value="both", label="Variant",
                                                  elem_id="blur-variant")
                    blur_run_button = gr.Button("Blur, then deblur", variant="primary", elem_id="blur-run")
                    gr.Examples(examples=[[str(e.sharp)] for e in EXAMPLES if e.sharp], inputs=[sharp_input],
                                label="Sharp photos to try", examples_per_page=12, elem_id="sharp-examples")
    with gr.Accordion("Resolution", open=False, elem_id="resolution"):
        megapixels_input = gr.Slider(0.1, app_logic.MAX_MEGAPIXELS_LIMIT[DEVICE_KIND], value=DEFAULT_MAX_MEGAPIXELS,
                                     step=0.05, label="Max resolution (megapixels)", elem_id="max-megapixels",
                                     info="larger photos are downscaled first; higher is slower "
                                          f"(running on {app_logic.describe_device(MODELS.device)}"
                                          f"{', fp32' if DEVICE_KIND == 'cpu-fp32' else ''})")


    empty_state = gr.Markdown("*Results appear here: click an example, or upload a photo and press Deblur (on the "
                              "second tab: pick or upload a sharp photo, set the blur and press Blur, then deblur).*",
                              elem_id="empty-state", elem_classes="hint")
    with gr.Column(visible=False, elem_id="results") as results:
        with gr.Row(equal_height=True, elem_id="result-panels"):
            for panel in (blurred_panel, *variant_panels, truth_panel):
                panel.render()
        report.render()
        # "wrap": on a phone the third view went into a "⋯" menu that nobody opens
        with gr.Tabs(elem_id="views", overflow_behavior="wrap"):
            with gr.Tab("Detail loupe", id="loupe-tab"):
                zoom_input = gr.Radio([(f"{z}x", z) for z in app_logic.ZOOMS], value=app_logic.ZOOMS[0],
                                      label="Zoom", elem_id="zoom", container=False)
                loupe = gr.Gallery(label="The same region, enlarged", elem_id="loupe", columns=4, height="auto",
                                   object_fit="contain", format="png", allow_preview=True, show_label=False)
                loupe_caption = gr.Markdown(elem_id="loupe-caption", elem_classes="loupe-caption")
            with gr.Tab("What changed", id="changes-tab"):
                heatmaps = gr.Gallery(label="|deblurred - blurred| per variant", elem_id="heatmaps", columns=2,
                                      height="auto", object_fit="contain", format="png")
                gr.Markdown("Where each variant changed the blurred input: black is unchanged, yellow the most "
                            "(one scale for both variants).", elem_classes="hint")
            with gr.Tab("Before / after slider", id="slider-tab"):
                with gr.Row():
                    for slider in sliders:
                        slider.render()
        downloads.render()
        with gr.Accordion("Details (JSON)", open=False):
            details.render()
    loupe_centre = gr.State(None)
    gr.Markdown(TRAINING_NOTE, elem_id="training-note")

    for setting in (variant_input, blur_variant_input, motion_length_input, motion_angle_input, shake_input,
                    defocus_input, noise_input, seed_input, megapixels_input):
        name_its_refusals(setting)
    panel_inputs = [blurred_panel, *variant_panels, truth_panel]
    show_outputs = [results, empty_state, *panel_inputs, *sliders, loupe, loupe_caption, loupe_centre, heatmaps]
    clear_outputs = [results, empty_state, *panel_inputs, *sliders, report, downloads, details, loupe,
                     loupe_caption, loupe_centre, heatmaps]

    # A run shows its progress where the results will be, and brings that place into view first: on a phone it is a
    # screen below the button, and a first run otherwise showed nothing for seconds. (`js` runs before the function and
    # passes the inputs on unchanged.)
    progress_places = dict(show_progress_on=[empty_state, *panel_inputs, report, downloads],
                           js="(...inputs) => { const place = [...document.querySelectorAll('#results, #empty-state')]"
                              ".find(e => e.offsetParent !== null); if (place && place.getBoundingClientRect().top > "
                              "window.innerHeight - 150) place.scrollIntoView({behavior: 'smooth', block: 'start'}); "
                              "return inputs; }")

    def after_run(event):
        """Show what a run produced, or clear the page when it failed."""
        event.success(show_results, inputs=[*panel_inputs, zoom_input], outputs=show_outputs,
                      queue=False, api_visibility="private")
        event.failure(clear_results, outputs=clear_outputs, queue=False, api_visibility="private")

    after_run(run_button.click(
        deblur, inputs=[image_input, variant_input, megapixels_input], outputs=result_outputs,
        api_name="deblur", concurrency_limit="default", **progress_places,
        api_description="Deblur an image with variant 'adam', 'sgd' or 'both'; max_megapixels is optional."))
    after_run(blur_run_button.click(
        blur_and_deblur, inputs=[sharp_input, blur_variant_input, motion_length_input, motion_angle_input,
                                 shake_input, defocus_input, noise_input, seed_input, megapixels_input],
        outputs=result_outputs, api_name="blur_and_deblur", concurrency_limit="default", **progress_places,
        api_description="Blur a sharp photo (motion length/angle, camera shake, defocus radius, noise), then "
                        "deblur it; the photo is the ground truth. Same outputs as /deblur."))
    example_gallery.cache_event.success(show_results, inputs=[*panel_inputs, zoom_input], outputs=show_outputs,
                                        queue=False, api_visibility="private")
    # the results below the tabs belong to the tab that made them: switching tabs clears them
    for user_changed in (image_input.upload, image_input.clear, sharp_input.upload, sharp_input.clear,
                         deblur_tab.select, blur_tab.select):
        user_changed(clear_results, outputs=clear_outputs, queue=False, api_visibility="private")
    for upload_input in (image_input, sharp_input):  # queued, as a toast needs; not behind a running deblur
        upload_input.upload(check_upload, inputs=upload_input, outputs=upload_input,
                            concurrency_limit=None, show_progress="hidden", api_visibility="private")
    for panel in panel_inputs:
        panel.select(move_loupe, inputs=[*panel_inputs, zoom_input], outputs=[loupe, loupe_caption, loupe_centre],
                     queue=False, show_progress="hidden", api_visibility="private")
    zoom_input.change(zoom_loupe, inputs=[*panel_inputs, zoom_input, loupe_centre],
                      outputs=[loupe, loupe_caption, loupe_centre], queue=False, show_progress="hidden",
                      api_visibility="private")

# One deblur at a time (each uses every core, or the GPU); up to queue_size() wait, each shown its place in the queue.
demo.queue(default_concurrency_limit=1, max_size=app_logic.queue_size())

# max_file_size: larger uploads are refused before they reach the disk.
LAUNCH_OPTIONS = dict(allowed_paths=[str(examples.EXAMPLES_DIR), os.environ["GRADIO_EXAMPLES_CACHE"],
                                     str(PROJECT_README), *(str(f / "README.md") for f in CHECKPOINT_FOLDERS.values())],
                      css=CSS, max_file_size=app_logic.max_upload_bytes())

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)

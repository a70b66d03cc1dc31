"""User-visible text of the Lung U-Net widget, in one place so wording stays consistent."""

WIDGET_TITLE = "Lung U-Net"
LUNGS_LAYER = "lungs"  # the Labels layer a proposal creates or updates

PROPOSE = "Propose lungs"
IMAGE_LABEL = "Image"
MODEL_LABEL = "Model"
DEVICE_LABEL = "Device"
BROWSE = "…"

IMAGE_TIP = "The chest X-ray (an Image layer) to segment. RGB is converted to grey."
MODEL_TIP = (
    "A registered model version (the current one is preselected), or type/browse a path to a "
    "model folder containing weights.safetensors and card.json."
)
BROWSE_TIP = "Choose a model folder on disk."
DEVICE_TIP = "auto picks CUDA, then Apple MPS, then CPU."
DEVICE_UNAVAILABLE_TIP = "not available on this machine"
PROPOSE_TIP = (
    f"Run the U-Net on the chosen image in the background and put the result in the "
    f"'{LUNGS_LAYER}' labels layer (1 = right lung, 2 = left lung)."
)

STATUS_IDLE = "Pick an image and press Propose lungs."
STATUS_NO_IMAGE = "Add or open an image first (File ▸ Open Sample ▸ Lung U-Net ▸ Chest X-ray phantom)."
STATUS_LOADING = "Loading model {model} on {device}…"
STATUS_PREDICTING = "Predicting with {version} on {device}…"
STATUS_DONE = "Proposed with {version} on {device} in {seconds:.1f} s."
STATUS_FAILED = "Failed: {message}"
CURRENT_SUFFIX = " (current)"
ERROR_PREFIX = "Lung U-Net: "

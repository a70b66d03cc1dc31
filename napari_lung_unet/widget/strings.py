"""User-visible text of the Lung U-Net widget, in one place so wording stays consistent."""

from ..images import labels as _labels

WIDGET_TITLE = "Lung U-Net"
LUNGS_LAYER = "lungs"  # the worklist's labels layer; another image's is "lungs (<image>)"


def n_cases(n: int) -> str:
    """'1 case', '2 cases'."""
    return f"{n} case" if n == 1 else f"{n} cases"


NAME_CHARS = 25  # a fine-tune's own name (ft-20261130-234138-123456) whole; ~200 px, inside the 240-px dock


def short_name(name: str, limit: int = NAME_CHARS) -> str:
    """A model name or path cut in the middle to ``limit`` characters: a word-wrapped label is as
    wide as its longest word, and one long name widened the dock past Next ▶ and Left lung (2)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head):]


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
    f"Run the U-Net on the chosen image in the background and put the result in that image's "
    f"own '{LUNGS_LAYER}…' labels layer, directly above it (1 = right lung, 2 = left lung)."
)

STATUS_IDLE = "Pick an image and press Propose lungs."
# the status line once a case or image shows a mask (the idle line above would be stale there)
STATUS_HAS_MASK = "Correct the mask if needed, then Accept (Shift-A)."
STATUS_NO_IMAGE = "Add or open an image first (File ▸ Open Sample ▸ Lung U-Net ▸ Chest X-ray phantom)."
STATUS_LOADING = "Loading model {model} on {device}…"
STATUS_PREDICTING = "Predicting with {version} on {device}…"
STATUS_DONE = "Proposed with {version} on {device} in {seconds:.1f} s."
STATUS_FAILED = "Failed: {message}"
CURRENT_SUFFIX = " (current)"
ERROR_PREFIX = "Lung U-Net: "

# -- review workflow ----------------------------------------------------------------------------
XRAY_LAYER = "x-ray"  # the worklist's Image layer; reused (never re-added) when switching cases
OPEN_FOLDER = "Open folder…"
OPEN_FOLDER_TIP = "Open a folder of chest X-rays (PNG/TIFF/JPEG/DICOM) as a review worklist."
OPEN_PACS = "Open from PACS…"
OPEN_PACS_TIP = "List a PACS's studies over DICOMweb and open the chosen ones as a review worklist."
PREVIOUS, NEXT, SKIP, ACCEPT = "◀ Previous", "Next ▶", "Skip", "Accept"
PREVIOUS_TIP = "Previous case (Shift-P)."
NEXT_TIP = "Next case (Shift-N). Edits are saved as a draft first."
SKIP_TIP = "Mark this case skipped and open the next one."
ACCEPT_TIP = "Save the image and the corrected mask to the corrections store and open the next case (Shift-A)."
ONLY_UNREVIEWED = "Only unreviewed"
ONLY_UNREVIEWED_TIP = "Hide accepted and skipped cases; Previous/Next step over them."
LEAST_SURE_FIRST = "Least sure first"
LEAST_SURE_FIRST_TIP = ("List the cases still to review by their proposal's expected Dice, lowest first (cases not "
                        "yet proposed after them, then the reviewed ones): Next opens the least sure one.")
AUTO_PROPOSE = "Auto-propose"
AUTO_PROPOSE_TIP = "Propose lungs by itself when a case without a proposal opens."
CONVENTION_LABEL = "Lung convention:"
CONVENTION_TIP = (
    "How this worklist's lungs are drawn, remembered with the worklist. Changing it proposes "
    "the open case again in the new convention."
)
CONVENTION_UNKNOWN = "Model {version} knows only {known}: it cannot propose {name} masks. Pick a model that knows both (e.g. default-3)."
CONVENTION_NO_WORKLIST = "Open a worklist to choose: the convention is a setting of each worklist."
STATUS_SYMBOLS = {"new": "○", "proposed": "◐", "edited": "✎", "accepted": "✔", "skipped": "–"}
UNCERTAIN_MARK = "⚠"
CASE_ITEM = "{symbol} {case_id}  ({status}){flag}"
CASE_ITEM_UNCERTAIN_TIP = "The model was unsure (expected Dice {confidence:.2f}): review this case carefully."
CASE_UNREADABLE = "{case_id} could not be opened: {error}"
OPENING_CASE = "Opening {case_id}…"  # its pixels are being read (off the GUI thread)
OPENING_FOLDER = "Opening the folder {folder}…"
WORKLIST_SUMMARY = "{cases}: {accepted} accepted, {skipped} skipped, {todo} to review"
CASE_INFO = "Case {index}/{n}: {case_id} — {status}"
MODEL_INFO = "Proposal by {version}, expected Dice {confidence:.2f}{flag}"
MODEL_INFO_NONE = "No proposal yet."
UNCERTAIN_FLAG = "  ⚠ uncertain: check carefully"
CHECK_PLACE = "  ⚠ check {place}"  # the flag, where the proposal's worker found where the model was unsure
SHOW_UNSURE = "Show where unsure"
SHOW_UNSURE_TIP = ("Overlay a heat map of where the model doubted its proposal of this X-ray (brighter: less sure), "
                   "to point you at the part to check. Untick to hide it.")
RGB_CONVERTED = "{case_id}: colour image converted to grey."
NO_CASE = "Open a worklist folder and a case first."
NO_IMAGE_TO_ACCEPT = "Pick an image or open a worklist folder first."
NO_LUNGS = "'{image}' has no lungs mask to accept yet: press Propose lungs first."
NO_SKIP = "Skip belongs to worklist cases; this image is not one."
WRONG_SHAPE = "The '{layer}' layer has shape {labels}, but the image is {image}; nothing was saved."
BAD_LABELS = "Labels must be 0 (background), 1 (right lung) or 2 (left lung); found {values}. Nothing was saved."
ACCEPTED_INFO = "Accepted {case_id} into the corrections store ({cases})."
DRAFT_RESTORED = "Restored your unsaved edits (draft) for {case_id}."
# a case whose edited mask was drawn on a proposal in the other convention: the edits are kept
EDITS_ELSEWHERE = (
    "{case_id}: your edits were drawn on a {drawn} proposal; this worklist is {wanted}. "
    "Correct them to {wanted} (Accept records {wanted}), or press Propose lungs to redo it in {wanted} (Ctrl-Z undoes)."
)
ACCEPTED_ELSEWHERE = "{case_id} was accepted on a {drawn} proposal, before this worklist became {wanted}."
END_OF_LIST = "No more cases in that direction."
ALL_DONE = "Every case in this worklist has been reviewed."

BRUSH = "Brush"
RIGHT_LUNG, LEFT_LUNG = (f"{_labels.LABEL_NAMES[v]} ({v})" for v in (_labels.RIGHT_LUNG, _labels.LEFT_LUNG))
REFINE = "Refine (click)"
REFINE_TIP = (
    "Refine mode (Shift-F): click inside lung the proposal missed to grow it there; right-click (or "
    "Alt-click) on marked lung that is not lung to shrink it. The model redoes the region around the "
    "click; what you painted by hand stays exactly. Undo (Ctrl-Z) takes a refine back like a stroke. "
    "Dragging still pans; the brush, the eraser or a lung button end Refine mode."
)
REFINE_NO_MASK = "Refine needs a mask: propose lungs first."
REFINING = "Refining…"
REFINED_PREFIX = "Refined:"
REFINED = REFINED_PREFIX + " {pixels:+d} px in {ms:.0f} ms. Ctrl-Z undoes it."
RESET = "Reset"
RESET_TIP = "Replace the mask with the model's proposal (one undoable step)."
NO_PROPOSAL = "This case has no proposal to reset to yet."
READOUT_EMPTY = "Areas appear here once a case has labels."
READOUT = "Right lung {right} · left lung {left} · {changed:.1f} % of the proposal changed"

FINETUNE = "Fine-tune"
FINETUNE_TIP = (
    "Fine-tune the current model on the accepted corrections, in a separate process; the new "
    "version becomes current only if it scores no worse."
)
CANCEL = "Cancel"
FINETUNE_RUNNING = "A fine-tune is already running; wait for it or press Cancel."
FINETUNE_EMPTY = "No accepted corrections in {store} yet: accept at least one case before fine-tuning."
FINETUNE_PROGRESS = "Fine-tuning: step {step}/{steps}, loss {loss:.4f}, about {eta:.0f} s left"
FINETUNE_PROGRESS_TIMING = "Fine-tuning: step {step}/{steps}, loss {loss:.4f}, timing the steps…"  # no ETA yet
FINETUNE_STAGE = "Fine-tuning: {message}"
FINETUNE_CANCELLED = "Fine-tuning cancelled; the current model is unchanged."
FINETUNE_FAILED = "Fine-tuning failed (exit code {code}): {tail}"
# one short line each: a button does not wrap, and a long one would widen the 240-px dock past the screen
REPROPOSE = "Re-propose this case with\n{version}"
REPROPOSE_NOT_CURRENT = "Re-propose this case with\n{version}\n({status}, not current)"
PROMOTE_ANYWAY = "Promote anyway"
PROMOTE_ANYWAY_TIP = (
    "The check against the base data could not be run. Make this version the current model "
    "anyway, on your own judgement; Model history can roll it back."
)
PROMOTED_ANYWAY = "{version} is now the current model (promoted by you)."
# the verdict: one line first, the checks under a fold
VERDICT_PROMOTED = "Promoted"
VERDICT_PROMOTED_BY_YOU = "Promoted on your yes"
VERDICT_HELD = ": your held-out corrections {before:.3f} → {after:.3f}"
VERDICT_HELD_KEPT = ": your held-out corrections {before:.3f} → {after:.3f}, within what a few cases vary"
VERDICT_UNVERIFIED = "Unverified: the original X-rays are not on this computer to check it against"
VERDICT_REJECTED = "Not promoted: {why}"
WHY_HELD_WORSE = "your held-out corrections got worse ({before:.3f} → {after:.3f})"
WHY_HELD_SAME = "your held-out corrections did not improve ({before:.3f} → {after:.3f})"
WHY_BASE = "it lost accuracy on the {name} ({before:.3f} → {after:.3f})"
WHY_ESTIMATE = "it moved too far from what it first learnt (an estimate: see Details)"
WHY_AGREEMENT = "it disagrees with the current model on your uncorrected images (Dice {after:.3f})"
WHY_OTHER = "{name} got worse ({numbers})"
DETAILS = "Details"
DETAILS_TIP = "What it trained on and every check the new version went through, with the numbers."
# the fine-tune result in plain words, when the engine gives no summary of its own
FT_TRAINED_ON = "Trained on {n_train} of your {n_total} accepted corrections; the other {n_holdout} were held back to check it."
FT_CHECK_HOLDOUT = "On the held-back corrections, the lungs overlap (Dice) went from {before:.3f} to {after:.3f}."
FT_CHECK_BASE = "On the original training data's validation images: {before:.3f} → {after:.3f}."
FT_CHECK_DATASET = "  {name}: {before:.3f} → {after:.3f}"
FT_NO_BASE = "No base data was found, so it was not checked against the original training images."
FT_PROMOTED = "{version} is now the current model: {reason}."
FT_REJECTED = "{version} was kept in Model history but is not used: {reason}."
FT_UNVERIFIED = "{version} could not be fully checked and is not used yet: press Promote anyway to use it."

# a damaged models/CURRENT: the registry's own message (file, cause, repair command), then the way in the dock
REGISTRY_DAMAGED = "⚠ {message}\nOr pick a version in Model ▸ Model history and press Make selected current."
HISTORY_TITLE = "Model history"
TAB_REVIEW, TAB_MODEL = "Review", "Model"
WORKLIST_TITLE, CORRECT_TITLE = "Worklist", "Correct"
HISTORY_COLUMNS = ["", "Version · status · Dice"]
HISTORY_TIP = "{version}: {status}, created {created}"
ROLLBACK = "Make selected current"
ROLLBACK_TIP = "Roll back (or forward) to the selected model version; new proposals will use it."
ROLLED_BACK = "{version} is now the current model."
HISTORY_SWITCHING = "Making {version} current: loading its weights…"
HISTORY_BUSY = "Still making {version} current; try again when it is."
RECHECK = "Recheck on later cases"
RECHECK_TIP = ("Score the selected fine-tuned version against the current model on the cases you accepted since it was "
               "made (neither trained on them): a small gain the fine-tune's own held-out cases could not show may show now.")
RECHECKING = "Rechecking {version} on the cases accepted since it was made…"
ASK_TITLE = "Make a {status} model current?"
ASK_TEXT = "{version} is {status}: {why}.\n\nMake it the current model anyway? New proposals will use it."
ASK_NO_REASON = "the fine-tune check did not make it current"
ASK_YES = "Make current"

# -- review: Accept says what it stores (Shift-A included) ---------------------------------------
ACCEPTING = "Storing {name} in the corrections store…"

# -- questions before work is lost (issue 33) ------------------------------------------------
REPLACE_TITLE = "Replace your edits?"
REPLACE_TEXT = "You edited this mask. {what} replaces it, and your edits are lost.\n\nEscape keeps your edits."
REPLACE_YES = "Replace my edits"
REPLACE_KEEP = "Keep my edits"
WHAT_CONVENTION = "A new proposal in {convention}"
WHAT_PROPOSAL = "A new proposal by {model}"
WHAT_RESET = "Reset to proposal"
KEPT_EDITS = "Kept your edits of {name}, drawn in {drawn}: its record will say {drawn}. New cases are proposed in {wanted}."
KEPT_EDITS_PLAIN = "Kept your edits of {name}."
EMPTY_TITLE = "Store an empty mask?"
EMPTY_TEXT = "The mask of {name} is empty. Store it as an X-ray with no lung?\n\nEscape stores nothing."
EMPTY_YES = "Store empty mask"
EMPTY_KEEP = "Cancel"
ACCEPT_WAITS = "{name} is still {phase}: Accept waits until its mask is shown."
STORED = "Stored {name} in the corrections store ({cases})."
PROPOSAL_DROPPED = "The proposal for {name} was dropped: the mask changed while it ran."
OPEN_ELSEWHERE = "{case_id} is {line}: you can look; Accept asks first."
HELD_TITLE = "Another reviewer has this case open"
HELD_TEXT = "{case_id} is {line}. Accept it anyway? Your mask replaces any they accepted."
HELD_YES = "Accept anyway"
HELD_KEEP = "Cancel"
REFINE_DROPPED = "A refine was dropped: the mask changed while it ran. Click again."
REFINE_DROPPED_REPLACED = "A refine was dropped: its mask was replaced while it ran."

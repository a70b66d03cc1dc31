"""``lung-unet predict … --report DIR``: one HTML page a researcher opens offline to find the masks to look at.

The page (``DIR/index.html``) holds, with nothing fetched from anywhere:

- the flagged masks (expected Dice below ``--flag-below``), least sure first, each as a thumbnail
  of the X-ray with its mask drawn on it: PNG files in ``DIR/thumbs/`` referenced by relative path,
  so the folder can be copied or zipped as a whole;
- a histogram of ``expected_dice`` over the batch (inline SVG), the threshold marked;
- the table: every row of results.csv, least sure first.

A small inline script writes how many thumbnails loaded into the page's title ("… — 12/12
thumbnails"), so a headless browser (tests/test_batch_report.py) can check the page as a person sees it.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..images.overlay import make_overlay
from ..images.read import read_xray
from ..nn.quality import review_order_key
from ..store.atomic import atomic_write_bytes, atomic_write_png
from .results import OK

REPORT_PAGE = "index.html"
THUMBS = "thumbs"
THUMB_SIZE = 256  # pixels along the longer side
MAX_THUMBS = 500  # a 10,000-image batch flags a few hundred at most; the table lists the rest
BINS = 40
COLUMNS = ("input", "expected_dice", "uncertain", "status", "convention", "model_version", "right_lung_px", "left_lung_px", "error")


def _expected(row: dict[str, str]) -> float | None:
    try:
        return float(row.get("expected_dice", "") or "nan") if row.get("status") == OK else None
    except ValueError:
        return None


def _clean(value: float | None) -> float | None:
    return None if value is None or np.isnan(value) else value


def flagged_rows(rows: Iterable[dict[str, str]], below: float) -> list[dict[str, str]]:
    """The rows whose expected Dice is below ``below``, least sure first."""
    found = [r for r in rows if (e := _clean(_expected(r))) is not None and e < below]
    return sorted(found, key=lambda r: review_order_key(_clean(_expected(r))))


def thumbnail(image_path: str | Path, mask_path: str | Path) -> np.ndarray:
    """The X-ray with its mask tinted and outlined, shrunk to THUMB_SIZE along its longer side."""
    import imageio.v3 as iio
    from ..nn.preprocess import resize

    pixels = read_xray(image_path).pixels
    labels = np.asarray(iio.imread(mask_path))
    scale = THUMB_SIZE / max(pixels.shape)
    size = (max(1, round(pixels.shape[0] * scale)), max(1, round(pixels.shape[1] * scale)))
    small = resize(pixels.astype(np.float32), size).numpy()
    small_labels = resize(labels.astype(np.float32), size, mode="nearest").numpy().astype(np.uint8)
    return make_overlay(small, small_labels)


def histogram_svg(values: list[float], below: float, width: int = 640, height: int = 180) -> str:
    """Counts of ``values`` in BINS bins over their range, as inline SVG; the flag threshold a red line."""
    if not values:
        return "<p>No masks with an expected Dice.</p>"
    low = min(min(values), below) - 0.005
    high = max(max(values), below) + 0.005
    counts, edges = np.histogram(values, bins=BINS, range=(low, high))
    pad, top = 30, max(int(counts.max()), 1)
    bar_w = (width - 2 * pad) / BINS
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" role="img" '
             f'aria-label="histogram of expected Dice">']
    for i, c in enumerate(counts):
        h = (height - 10) * c / top
        x = pad + i * bar_w
        fill = "#d9534f" if edges[i + 1] <= below else "#5b8bd9"
        parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{fill}">'
                     f'<title>{edges[i]:.3f}–{edges[i + 1]:.3f}: {c}</title></rect>')
    x_of = lambda v: pad + (v - low) / (high - low) * (width - 2 * pad)  # noqa: E731
    parts.append(f'<line x1="{x_of(below):.1f}" x2="{x_of(below):.1f}" y1="0" y2="{height}" stroke="#b00" stroke-dasharray="4"/>')
    for v in np.linspace(low, high, 6):
        parts.append(f'<text x="{x_of(v):.1f}" y="{height + 18}" font-size="11" text-anchor="middle">{v:.3f}</text>')
    parts.append(f'<text x="{pad}" y="12" font-size="11">max {top}</text></svg>')
    return "".join(parts)


def write_report(folder: str | Path, rows: dict[str, dict[str, str]], below: float, title: str = "lung-unet predict") -> Path:
    """Write the page, its thumbnails and nothing else into ``folder``; return the page's path."""
    folder = Path(folder)
    (folder / THUMBS).mkdir(parents=True, exist_ok=True)
    all_rows = sorted(rows.values(), key=lambda r: review_order_key(_clean(_expected(r))))
    flagged = flagged_rows(all_rows, below)
    values = [e for r in all_rows if (e := _clean(_expected(r))) is not None]
    cards = []
    for i, row in enumerate(flagged[:MAX_THUMBS]):
        name = f"{THUMBS}/{i:05d}.png"
        try:
            atomic_write_png(folder / name, thumbnail(row["input"], row["output"]))
        except Exception as exc:  # a file moved since the run: the card says so, the page still opens
            cards.append(f'<figure class="missing"><figcaption>{html.escape(Path(row["input"]).name)}: '
                         f'no thumbnail ({html.escape(type(exc).__name__)})</figcaption></figure>')
            continue
        cards.append(
            f'<figure><img src="{name}" alt="{html.escape(Path(row["input"]).name)}" width="{THUMB_SIZE}">'
            f'<figcaption><b>{_expected(row):.3f}</b> {html.escape(Path(row["input"]).name)}</figcaption></figure>')
    more = f"<p>{len(flagged) - MAX_THUMBS} more flagged masks are in the table.</p>" if len(flagged) > MAX_THUMBS else ""
    table_rows = "".join(
        "<tr" + (' class="flag"' if r in flagged else "") + ">" +
        "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in COLUMNS) + "</tr>" for r in all_rows)
    page = _PAGE.format(
        title=html.escape(title), n=len(all_rows), n_flagged=len(flagged), below=below,
        share=len(flagged) / max(len(values), 1), histogram=histogram_svg(values, below), cards="".join(cards) + more,
        head="".join(f"<th>{c}</th>" for c in COLUMNS), rows=table_rows,
    )
    return atomic_write_bytes(folder / REPORT_PAGE, page.encode("utf-8"))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 10px; }}
figure {{ margin: 0; width: 256px; }} figcaption {{ font-size: 12px; word-break: break-all; }}
table {{ border-collapse: collapse; font-size: 12px; }} td, th {{ border: 1px solid #ccc; padding: 2px 6px; }}
tr.flag {{ background: #fde8e8; }}
</style></head><body>
<h1>{title}</h1>
<p>{n} inputs; <b>{n_flagged}</b> masks ({share:.1%}) have an expected Dice below {below}: look at these.</p>
<h2>Expected Dice</h2>
{histogram}
<h2>Flagged, least sure first</h2>
<div class="grid">{cards}</div>
<h2>Every row, least sure first</h2>
<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
<script>
// for a headless check: how many thumbnails loaded, in the title
window.addEventListener("load", function () {{
  var imgs = document.querySelectorAll("figure img"), ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  document.title = document.title + " — " + ok + "/" + imgs.length + " thumbnails";
}});
</script>
</body></html>
"""

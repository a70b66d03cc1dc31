"""How long does a clinician wait for a proposal? File on disk -> lung labels at the original size.

Generates three phantom radiographs (a 4020×4892 uint16 PNG, a 2048×2500 DICOM with PixelSpacing
and a 512×512 PNG; cached under $TMPDIR/lung-unet-bench so re-runs start at once), then times
read / preprocess / network / postprocess and the whole chain, each as a median of ``--runs``
after a warm-up, on the CPU with the default thread count and with 2 threads, and on the GPU when
there is one. Also times the PNG decoders at hand and the network's memory layouts, which is
where the time on a 20-Mpx file goes.

    python bench/proposal_latency.py [--runs 5] [--threads default 2] [--model NAME_OR_PATH]
                                     [--omp-passive] [--baseline-src DIR]

``--baseline-src`` times another checkout's package on the same files in a subprocess, so
before/after come from one run: ``git archive <commit> napari_lung_unet | tar -x -C DIR``.
``--omp-passive`` adds rows with OMP_WAIT_POLICY=PASSIVE: when another job holds a core, OpenMP's
spinning threads make 2-thread inference many times slower than 1 thread, and passive waiting fixes that.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import median_time, publish  # noqa: E402

from napari_lung_unet.images.read import read_xray  # noqa: E402
from napari_lung_unet.images.phantom import make_phantom  # noqa: E402
from napari_lung_unet.nn.predict import Predictor  # noqa: E402
from napari_lung_unet.nn.registry import Registry  # noqa: E402

BIG = "png 4020×4892"
INPUTS = {  # name -> (file name, shape, phantom seed)
    BIG: ("phantom_4020x4892.png", (4020, 4892), 11),
    "DICOM 2048×2500": ("phantom_2048x2500.dcm", (2048, 2500), 12),
    "png 512×512": ("phantom_512x512.png", (512, 512), 13),
}
DICOM_SPACING = (0.143, 0.143)  # mm, a typical DR detector pitch
TARGET_S = 0.5
STAGES = ("read", "preprocess", "network", "postprocess")
NO_GPU = "not yet measured (no GPU in this session)"


def cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "lung-unet-bench"


def write_dicom(path: Path, image: np.ndarray, spacing: tuple[float, float] = DICOM_SPACING) -> None:
    """A single-frame MONOCHROME2 radiograph as a DR modality writes it (uncompressed, 16-bit)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelSpacing = [f"{spacing[0]:g}", f"{spacing[1]:g}"]
    ds.PixelData = image.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def phantom_file(name: str, shape: tuple[int, int], seed: int, folder: Path | None = None) -> Path:
    """A phantom radiograph on disk, generated once (15 s at 20 Mpx) and then reused."""
    import imageio.v3 as iio

    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        image, _ = make_phantom(shape, seed=seed)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")  # renamed into place: no half-written cache
        if path.suffix == ".dcm":
            write_dicom(tmp, image)
        else:
            iio.imwrite(tmp, image)
        tmp.replace(path)
    return path


def bench_inputs(folder: Path | None = None) -> dict[str, Path]:
    return {label: phantom_file(name, shape, seed, folder) for label, (name, shape, seed) in INPUTS.items()}


def stage_times(predictor: Predictor, path: Path, runs: int) -> dict[str, float]:
    """Median seconds per stage (each timed on its own) and for the whole chain."""
    xray = read_xray(path)
    x, shape = predictor.prepare(xray)
    prob = predictor.network(x[None])[0]
    out = {
        "read": median_time(lambda: read_xray(path), runs),
        "preprocess": median_time(lambda: predictor.prepare(xray), runs),
        "network": median_time(lambda: predictor.network(x[None]), runs),  # includes the copy back, so it syncs
        "postprocess": median_time(lambda: predictor.finish(prob, shape), runs),
        "end to end": median_time(lambda: predictor.predict(read_xray(path)), runs),
    }
    out["proposal"] = float((predictor.predict(xray).labels > 0).mean())  # lung fraction, to show the work is real
    return out


def measure(model: str | None, inputs: dict[str, Path], configs: list[tuple[str, str]], runs: int) -> list[dict]:
    default_threads = torch.get_num_threads()
    loaded = Registry().load(model)
    rows = []
    for device, threads in configs:
        torch.set_num_threads(default_threads if threads == "default" else int(threads))
        predictor = Predictor(copy.deepcopy(loaded), device=device)
        for label, path in inputs.items():
            times = stage_times(predictor, path, runs)
            rows.append({"input": label, "device": device, "threads": threads, "n_threads": torch.get_num_threads(), **times})
            print(f"{label:16s} {device:4s} threads={threads:7s} " + "  ".join(f"{k} {v * 1000:7.1f} ms" for k, v in times.items() if k != "proposal"), flush=True)
    torch.set_num_threads(default_threads)
    return rows


def read_alternatives(path: Path, runs: int) -> list[tuple[str, float]]:
    """The decoders at hand on the big PNG, and zlib alone: how close the reader is to its floor."""
    import imageio.v3 as iio
    from PIL import Image

    def pil() -> np.ndarray:
        with Image.open(path) as im:
            return np.asarray(im)

    data = path.read_bytes()
    idat, pos = [], 8
    while pos < len(data):  # PNG chunks: length, type, payload, CRC
        n = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + n])
        pos += 12 + n
    compressed = b"".join(idat)
    return [
        ("read_xray (Pillow for grey PNGs, then float32)", median_time(lambda: read_xray(path), runs)),
        ("imageio.v3.imread", median_time(lambda: iio.imread(path), runs)),
        ("PIL Image.open + np.asarray", median_time(pil, runs)),
        (f"zlib.decompress of the IDAT stream alone (zlib {zlib.ZLIB_RUNTIME_VERSION}): the floor", median_time(lambda: zlib.decompress(compressed), runs)),
    ]


def network_layouts(model: str | None, size: int, thread_counts: list[int], runs: int) -> list[tuple[int, float, float]]:
    """Batch-1 forward at the model's input size, NCHW against channels_last, per thread count."""
    net = Registry().load(model).model.eval()
    nhwc = copy.deepcopy(net).to(memory_format=torch.channels_last)
    x = torch.rand(1, 1, size, size)
    x_nhwc = x.contiguous(memory_format=torch.channels_last)
    default_threads, rows = torch.get_num_threads(), []
    with torch.inference_mode():
        for n in thread_counts:
            torch.set_num_threads(n)
            rows.append((n, median_time(lambda: net(x), runs, warmup=2), median_time(lambda: nhwc(x_nhwc), runs, warmup=2)))
    torch.set_num_threads(default_threads)
    return rows


def realistic_postprocess(predictor: Predictor, shapes: list[tuple[int, int]], runs: int) -> list[tuple[tuple[int, int], float, float]]:
    """Postprocess alone on a lung-shaped probability (smoothed phantom truth), whatever the model outputs.

    An untrained placeholder model proposes the whole image, which leaves few border cells to
    interpolate; real lungs have long borders, so this is the representative postprocess cost.
    """
    from scipy import ndimage

    size = predictor.card.input_size
    _, truth = make_phantom((size, size), seed=21)
    prob = ndimage.gaussian_filter((truth > 0).astype(np.float32), size / 128)
    return [(shape, median_time(lambda: predictor.finish(prob, shape), runs), float((predictor.finish(prob, shape).labels > 0).mean()))
            for shape in shapes]


def run_child(args: argparse.Namespace, configs: list[tuple[str, str]], env: dict[str, str], package: Path | None) -> list[dict]:
    """Time the same files in a subprocess: another checkout's package, or an environment read at import."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, __file__, "--runs", str(args.runs), "--json-out", str(out), "--no-record", "--configs-json", json.dumps(configs)]
        # the model folder, not its name: a baseline checkout's bundled default may be different weights
        cmd += ["--model", str(Registry().resolve(args.model))]
        cmd += ["--expect-package", str(package)] if package else []
        child_env = {**os.environ, **env}
        if package:
            child_env["PYTHONPATH"] = os.pathsep.join([str(package), os.environ.get("PYTHONPATH", "")])
        subprocess.run(cmd, env=child_env, check=True)
        return json.loads(out.read_text())


def describe_checkout(src: Path) -> str:
    commit = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return commit.stdout.strip() if commit.returncode == 0 else str(src)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}" if seconds >= 0.01 else f"{seconds * 1000:.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per median, after one warm-up (default 5)")
    ap.add_argument("--threads", nargs="+", default=["default", "2"], help="CPU thread settings to time (default: default 2)")
    ap.add_argument("--model", default=None, help="model version or folder (default: the current version)")
    ap.add_argument("--baseline-src", type=Path, default=None, help="another checkout to time on the same files, e.g. before an optimisation")
    ap.add_argument(
        "--omp-passive", action="store_true",
        help="also time this checkout with OMP_WAIT_POLICY=PASSIVE (read when torch loads, hence a subprocess)",
    )
    ap.add_argument("--no-record", action="store_true", help="do not append to docs/benchmarks.md")
    ap.add_argument("--json-out", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--configs-json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--expect-package", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.expect_package is not None:  # a baseline child must not silently time this checkout instead
        import napari_lung_unet

        if not Path(napari_lung_unet.__file__).resolve().is_relative_to(args.expect_package.resolve()):
            sys.exit(f"baseline imports {napari_lung_unet.__file__}, not the package under {args.expect_package}")

    default_threads = torch.get_num_threads()
    if args.configs_json:
        configs = [tuple(c) for c in json.loads(args.configs_json)]
    else:
        seen, configs = set(), []
        for t in args.threads:  # "default" and "2" are the same thing on a 2-core machine: time it once
            n = default_threads if t == "default" else int(t)
            if n not in seen:
                seen.add(n)
                configs.append(("cpu", t if t == "default" else str(n)))
        if torch.cuda.is_available():
            configs.append(("cuda", "default"))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    inputs = bench_inputs()
    print(f"inputs ready in {time.perf_counter() - t0:.1f} s under {cache_dir()}; load average {load:.1f}", flush=True)

    rows = measure(args.model, inputs, configs, args.runs)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows))
        return
    builds = [("this", rows)]
    cpu_configs = [c for c in configs if c[0] == "cpu"]
    if args.omp_passive:
        builds.append(("this, OMP_WAIT_POLICY=PASSIVE", run_child(args, cpu_configs, {"OMP_WAIT_POLICY": "PASSIVE"}, None)))
    if args.baseline_src:
        builds.append((f"baseline {describe_checkout(args.baseline_src)}", run_child(args, cpu_configs, {}, args.baseline_src)))
    reads = read_alternatives(inputs[BIG], args.runs)
    post = realistic_postprocess(Predictor(Registry().load(args.model), device="cpu"), [shape for _, shape, _ in INPUTS.values()], args.runs)
    size = Registry().load(args.model).card.input_size
    layouts = network_layouts(args.model, size, sorted({1, default_threads, *(r["n_threads"] for r in rows if r["device"] == "cpu")}), args.runs)

    def thread_label(r: dict) -> str:
        return f"{r['device']}, {r['n_threads']} threads" + (" (default)" if r["threads"] == "default" else "")

    table = ["| input | build | device, threads | read | preprocess | network | postprocess | end to end (ms) | lung fraction |",
             "|---|---|---|---|---|---|---|---|---|"]
    for build, build_rows in builds:
        for r in build_rows:
            table.append(f"| {r['input']} | {build} | {thread_label(r)} | " + " | ".join(ms(r[s]) for s in STAGES)
                         + f" | **{ms(r['end to end'])}** | {r['proposal']:.2f} |")
    if not torch.cuda.is_available():
        table.append(f"| all three | this | GPU | {NO_GPU} | | | | | |")
    big_rows = [r for r in rows if r["input"] == BIG and r["device"] == "cpu"]
    big = next((r for r in big_rows if r["threads"] == "default"), big_rows[0])
    verdict = "met" if big["end to end"] <= TARGET_S else "missed"
    lines = [
        f"Median of {args.runs} runs after a warm-up; each stage timed on its own, 'end to end' timed as one chain "
        f"(read_xray + Predictor.predict). Model `{Registry().load(args.model).card.version}`, input {size}². "
        f"Load average at start: {load:.1f} on {os.cpu_count()} cores (a value near the core count means another job competed for the CPU).",
        "",
        *table,
        "",
        f"Target ≤ {TARGET_S} s end to end for the 4020×4892 PNG on the CPU ({thread_label(big)}): **{verdict}** "
        f"({big['end to end']:.2f} s; read {big['read']:.2f} s of it).",
        "",
        "Postprocess alone on a lung-shaped probability (a smoothed phantom mask), CPU, default threads"
        + (" — the model above is an untrained placeholder that proposes (almost) the whole image, so this is the representative cost:"
           if any(not 0.02 < r["proposal"] < 0.9 for r in rows) else ":"),
        "",
        "| output size | postprocess (ms) | lung fraction |",
        "|---|---|---|",
        *(f"| {h}×{w} | {ms(t)} | {frac:.2f} |" for (h, w), t, frac in post),
        "",
        "PNG decoding of the 4020×4892 uint16 file (the read stage):",
        "",
        "| decoder | median (ms) |",
        "|---|---|",
        *(f"| {name} | {ms(t)} |" for name, t in reads),
        "",
        f"Network alone, batch 1 at {size}², by memory layout (the CPU predictor uses channels_last):",
        "",
        "| threads | NCHW (ms) | channels_last (ms) | speed-up |",
        "|---|---|---|---|",
        *(f"| {n} | {ms(a)} | {ms(b)} | {a / b:.2f}× |" for n, a, b in layouts),
    ]
    publish("Proposal latency, end to end (bench/proposal_latency.py)", lines, record=not args.no_record)


if __name__ == "__main__":
    main()

"""Issue 31's process, bound and first-use probes, run against one source tree; one JSON line per probe.

    python bench/reliability_round3.py --tree DIR [--only NAME ...] [--skip-heavy]

``--tree``: the checkout to probe (it goes first on PYTHONPATH of every process started here); run it
once against the tree before the fixes and once against the fixed one (docs/reliability.md, Round 3).
Everything is real: ``lung-unet`` processes, SIGKILL / SIGTERM / SIGINT, a DICOMweb server on
127.0.0.1 (tests/dicomweb_server.py), phantom X-rays written to disk, a tiny real U-Net.
``--skip-heavy`` leaves out the probes that allocate for real (``--workers 1000``, ``--batch-size 1000``),
which on an unfixed tree fill the machine's memory.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def _env(tree: Path, home: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(tree), LUNG_UNET_HOME=str(home), OMP_NUM_THREADS="1", **extra)
    return env


def _lung_unet() -> list[str]:
    return [sys.executable, "-m", "napari_lung_unet.cli"]


def _py(tree: Path, home: Path, code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=_env(tree, home))


def _phantoms(folder: Path, n: int, side: int, tree: Path, home: Path, masks: Path | None = None) -> None:
    code = (
        "import sys, numpy as np, imageio.v3 as iio; from pathlib import Path\n"
        "from napari_lung_unet.images.phantom import make_phantom\n"
        f"d = Path({str(folder)!r}); d.mkdir(parents=True, exist_ok=True)\n"
        f"m = {str(masks) if masks else ''!r}\n"
        f"for i in range({n}):\n"
        f"    x, y = make_phantom(({side}, {side}), seed=i, dtype=np.uint8)\n"
        "    iio.imwrite(d / f'c{i:02d}.png', x)\n"
        "    if m: Path(m).mkdir(parents=True, exist_ok=True); iio.imwrite(Path(m) / f'c{i:02d}.png', ((y > 0) * 255).astype(np.uint8))\n"
    )
    result = _py(tree, home, code)
    assert result.returncode == 0, result.stderr


def _tiny_model(folder: Path, tree: Path, home: Path, conventions: int = 1) -> Path:
    code = (
        "import torch; from dataclasses import replace\n"
        "from napari_lung_unet.nn.model import UNet, UNetConfig; from napari_lung_unet.nn.card import ModelCard\n"
        "from napari_lung_unet.nn.model_io import save_model\n"
        f"cfg = UNetConfig(base_channels=4, depth=2, out_channels={conventions}); torch.manual_seed(0)\n"
        f"conv = ['lung-fields', 'whole-lung'][:{conventions}]\n"
        f"save_model({str(folder)!r}, UNet(cfg), ModelCard(version='tiny', architecture=cfg, input_size=64, conventions=conv))\n"
    )
    result = _py(tree, home, code)
    assert result.returncode == 0, result.stderr
    return folder


def _rows(out: Path) -> list[dict[str, str]]:
    import csv

    try:
        with open(out / "results.csv", newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except OSError:
        return []


def _wait(condition, seconds: float) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _descendants(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _alive(processes: list) -> int:
    import psutil

    n = 0
    for p in processes:
        try:
            n += p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            pass
    return n


def probe_worker_kill(tree: Path, work: Path) -> dict:
    """40 phantoms, --workers 2, one worker SIGKILLed after 5 rows."""
    import psutil

    home, inputs, out = work / "home", work / "in", work / "out"
    _phantoms(inputs, 40, 1000, tree, home)
    model = _tiny_model(work / "tiny", tree, home)
    proc = subprocess.Popen([*_lung_unet(), "predict", str(inputs), "-o", str(out), "--model", str(model), "--device", "cpu",
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(tree, home))
    _wait(lambda: len(_rows(out)) >= 5 or proc.poll() is not None, 120)
    workers = [c for c in _descendants(proc.pid) if c.ppid() != proc.pid]  # the forkserver's children
    busy = []  # a worker that is running (not waiting for) an image; on the fixed tree its name says which
    _wait(lambda: busy or busy.extend(w for w in workers if w.status() == psutil.STATUS_RUNNING
                                      and not Path(f"/proc/{w.pid}/comm").read_text().strip().endswith("idle")), 30)
    (busy or workers)[0].send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    rows = _rows(out)
    failed = [r for r in rows if r.get("status") != "ok"]
    return {"exit": proc.returncode, "rows": f"{len(rows)} of 40", "failed rows": len(failed),
            "reasons": sorted({r.get("error", "") for r in failed}), "error lines": [l for l in err.splitlines() if l.startswith("error")]}


def probe_main_kill(tree: Path, work: Path) -> dict:
    """40 phantoms, --workers 2, the main process SIGKILLed after 5 rows; what is left 5 s later."""
    home, inputs, out = work / "home", work / "in", work / "out"
    _phantoms(inputs, 40, 1000, tree, home)
    model = _tiny_model(work / "tiny", tree, home)
    proc = subprocess.Popen([*_lung_unet(), "predict", str(inputs), "-o", str(out), "--model", str(model), "--device", "cpu",
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(tree, home))
    _wait(lambda: len(_rows(out)) >= 5, 120)
    children = _descendants(proc.pid)
    proc.kill()
    proc.wait()
    time.sleep(5)  # the probe's own measure: what is left 5 s later
    left = _alive(children)
    try:
        proc.communicate(timeout=1)
        pipes = "closed"
    except subprocess.TimeoutExpired:
        pipes = "held open"
    for child in children:
        try:
            child.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass
    return {"children": len(children), "alive_after_5s": left, "caller_pipes": pipes}


def probe_dicomweb_sigterm(tree: Path, work: Path) -> dict:
    """SIGTERM while a DICOMweb instance trickles in; then a SIGKILLed run and a next run."""
    sys.path.insert(0, str(HERE / "tests"))
    import numpy as np
    from dicom_files import write_radiograph
    from dicomweb_server import running_pacs

    home = work / "home"
    model = _tiny_model(work / "tiny", tree, home)
    result = {}
    with running_pacs() as pacs:
        study = pacs.add(write_radiograph(work / "x.dcm", (np.arange(64 * 64) % 255).astype(np.uint8).reshape(64, 64)).read_bytes())
        for kind in ("SIGTERM", "SIGKILL"):
            tmpdir = work / f"tmp_{kind}"
            tmpdir.mkdir()
            pacs.fault, pacs.wado_only, pacs.trickle_every_s = "trickle", True, 0.05
            pacs.requests.clear()
            proc = subprocess.Popen([*_lung_unet(), "predict", pacs.study_url(study.StudyInstanceUID), "-o", str(work / "out"),
                                     "--model", str(model), "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env=_env(tree, home, TMPDIR=str(tmpdir)))
            _wait(lambda: any("/instances/" in r for r in pacs.requests) and any(tmpdir.iterdir()), 60)
            proc.send_signal(signal.SIGTERM if kind == "SIGTERM" else signal.SIGKILL)
            proc.wait(timeout=30)
            result[f"{kind}: left in TMPDIR"] = len(list(tmpdir.iterdir()))
            if kind == "SIGKILL":
                pacs.fault = None
                subprocess.run([*_lung_unet(), "predict", pacs.study_url(study.StudyInstanceUID), "-o", str(work / "out2"),
                                "--model", str(model), "--device", "cpu"], capture_output=True, timeout=300,
                               env=_env(tree, home, TMPDIR=str(tmpdir)))
                result["after the next run"] = len(list(tmpdir.iterdir()))
    return result


def probe_missing_input(tree: Path, work: Path) -> dict:
    home, out = work / "home", work / "out"
    model = _tiny_model(work / "tiny", tree, home)
    r = subprocess.run([*_lung_unet(), "predict", str(work / "typo.png"), "-o", str(out), "--model", str(model), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300, env=_env(tree, home))
    lines = [line for line in r.stderr.replace("\r", "\n").splitlines() if line.strip()]
    return {"exit": r.returncode, "stderr_lines": len(lines), "last": lines[-1] if lines else "",
            "model_loaded": any("file(s) to do" in line for line in lines), "written": sorted(p.name for p in out.glob("*")) if out.exists() else []}


def probe_seg_on_png(tree: Path, work: Path) -> dict:
    home, out = work / "home", work / "out"
    _phantoms(work / "in", 2, 96, tree, home)
    model = _tiny_model(work / "tiny", tree, home)
    r = subprocess.run([*_lung_unet(), "predict", str(work / "in"), "-o", str(out), "--model", str(model), "--device", "cpu", "--seg"],
                       capture_output=True, text=True, timeout=300, env=_env(tree, home))
    return {"exit": r.returncode, "says": [line for line in r.stderr.splitlines() if "seg" in line.lower()]}


def probe_evaluate(tree: Path, work: Path) -> dict:
    home, tmpdir = work / "home", work / "tmpdir"
    tmpdir.mkdir()
    _phantoms(work / "site" / "xrays", 4, 128, tree, home, masks=work / "site" / "truth")
    model = _tiny_model(work / "tiny", tree, home, conventions=2)
    r = subprocess.run([*_lung_unet(), "evaluate", "--images", str(work / "site" / "xrays"), "--masks", str(work / "site" / "truth"),
                        "--model", str(model), "--device", "cpu"], capture_output=True, text=True, timeout=300,
                       env=_env(tree, home, TMPDIR=str(tmpdir)))
    said = [line for line in r.stdout.splitlines() if "drawn" in line or "convention" in line]
    return {"exit": r.returncode, "says": said, "lung_unet_eval_left": len(list(tmpdir.glob("lung_unet_eval_*")))}


def probe_api(tree: Path, work: Path) -> dict:
    code = (
        "import json, numpy as np\n"
        "from training.finetune import FinetuneConfig\n"
        "from napari_lung_unet.nn.refine import RefineContext, Click\n"
        "out = {}\n"
        "for kw in [dict(max_unlabeled=0), dict(steps=0), dict(steps=-5)]:\n"
        "    try: FinetuneConfig(**kw); out[str(kw)] = 'accepted'\n"
        "    except Exception as e: out[str(kw)] = f'{type(e).__name__}: {e}'\n"
        "p = np.full((64, 64), 0.2, np.float32); p[20:40, 10:30] = 0.9\n"
        "for shape in [(1, 1), (3, 100000)]:\n"
        "    try: r = RefineContext(p, shape).refine(np.zeros(shape, np.uint8), Click(0, 0, True)); out[str(shape)] = f'box {r.box}'\n"
        "    except Exception as e: out[str(shape)] = f'{type(e).__name__}: {str(e)[:80]}'\n"
        "print(json.dumps(out))\n"
    )
    r = _py(tree, work / "home", code)
    return json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-300:]}


def probe_ctrl_c(tree: Path, work: Path) -> dict:
    tracebacks, codes = 0, []
    for delay in (0.2, 0.5, 0.8, 1.1, 1.4):
        proc = subprocess.Popen([*_lung_unet(), "finetune", "--corrections", str(work / "store")], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env(tree, work / "home"))
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        tracebacks += "Traceback" in err
        codes.append(proc.returncode)
    return {"tracebacks": f"{tracebacks} of 5", "exit_codes": sorted(set(codes))}


def probe_workers_1000(tree: Path, work: Path) -> dict:
    home = work / "home"
    _phantoms(work / "in", 4, 256, tree, home)
    model = _tiny_model(work / "tiny", tree, home)
    r = subprocess.run([*_lung_unet(), "predict", str(work / "in"), "-o", str(work / "out"), "--model", str(model), "--device", "cpu",
                        "--workers", "1000"], capture_output=True, text=True, timeout=600, env=_env(tree, home))
    return {"exit": r.returncode, "says": [line for line in r.stderr.splitlines() if "workers" in line or "worker(s)" in line][:2]}


def probe_finetune_memory(tree: Path, work: Path) -> dict:
    """The shipped model (16 channels, 384², two conventions) on 6 phantom corrections."""
    home = work / "home"
    _phantoms(work / "data" / "images", 6, 256, tree, home, masks=work / "data" / "masks")
    out = {}
    for option in ("--batch-size", "--keep-others"):
        started = time.monotonic()
        r = subprocess.run([*_lung_unet(), "finetune", "--corrections", str(work / "data"), option, "1000", "--device", "cpu"],
                           capture_output=True, text=True, timeout=600, env=_env(tree, home))
        out[option] = {"exit": r.returncode, "seconds": round(time.monotonic() - started, 1),
                       "last": (r.stderr.strip().splitlines() or [""])[-1][:200]}
    return out


PROBES = {
    "worker_kill": probe_worker_kill, "main_kill": probe_main_kill, "dicomweb_sigterm": probe_dicomweb_sigterm,
    "missing_input": probe_missing_input, "seg_on_png": probe_seg_on_png, "evaluate": probe_evaluate, "api": probe_api,
    "ctrl_c": probe_ctrl_c, "workers_1000": probe_workers_1000, "finetune_memory": probe_finetune_memory,
}
HEAVY = {"workers_1000", "finetune_memory"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, default=HERE)
    parser.add_argument("--only", nargs="*", choices=sorted(PROBES))
    parser.add_argument("--skip-heavy", action="store_true")
    args = parser.parse_args()
    for name, probe in PROBES.items():
        if (args.only and name not in args.only) or (args.skip_heavy and name in HEAVY):
            continue
        with tempfile.TemporaryDirectory(prefix=f"probe_{name}_") as work:
            try:
                result = probe(args.tree.resolve(), Path(work))
            except Exception as exc:  # noqa: BLE001 - a probe that breaks is a result too
                result = {"probe error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps({"probe": name, **result}), flush=True)


if __name__ == "__main__":
    main()

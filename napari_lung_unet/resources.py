"""What this machine can give a run: its free memory, read from the kernel (a cgroup's limit included).

Options such as ``predict --workers`` and ``finetune --batch-size`` are sized against it, so that a
value typed by hand (``--workers 1000`` filled a 4 GiB cgroup; ``--batch-size 1000`` died in the
allocator at 7.4 GB, issue 31 #5) is capped or refused before anything starts.
"""

from __future__ import annotations

from pathlib import Path

GB = 1024**3


def available_memory() -> int | None:
    """Bytes this process could still allocate: the least of the system's MemAvailable and its cgroup's
    room (limit less usage, cgroup v2 or v1). None where the kernel says neither (not Linux)."""
    found = [n for n in (_meminfo_available(), _cgroup_room()) if n is not None]
    return min(found) if found else None


def gb(n: int) -> str:
    """``3.1 GB``: bytes as a person reads them."""
    return f"{n / GB:.1f} GB"


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """Limit less usage of this process's memory cgroup, or None when it has no limit."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            folder = Path("/sys/fs/cgroup") / path.lstrip("/")
            room = _room(folder / "memory.max", folder / "memory.current")
        elif "memory" in controllers.split(","):
            folder = Path("/sys/fs/cgroup/memory") / path.lstrip("/")
            if not folder.is_dir():  # a cgroup namespace: this process's own cgroup is mounted as the root
                folder = Path("/sys/fs/cgroup/memory")
            room = _room(folder / "memory.limit_in_bytes", folder / "memory.usage_in_bytes")
        else:
            continue
        if room is not None:
            return room
    return None


def _room(limit_file: Path, usage_file: Path) -> int | None:
    try:
        limit = limit_file.read_text().strip()
        if limit == "max" or int(limit) >= 2**60:  # no limit (v1 writes a huge number)
            return None
        return max(0, int(limit) - int(usage_file.read_text().strip()))
    except (OSError, ValueError):
        return None

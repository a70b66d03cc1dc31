"""Versioned model registry under the home folder, next to the bundled default model.

Layout::

    $LUNG_UNET_HOME/models/<version>/{weights.safetensors,card.json}
    $LUNG_UNET_HOME/models/CURRENT      # one line: the current version
    $LUNG_UNET_HOME/.registry.lock      # held while anything under models/ is written

A version folder is built under a temporary name and renamed into place, and CURRENT is
replaced atomically, so a crash at any point leaves the registry loadable and current unchanged.
A damaged CURRENT is an error that says how to repair it, never a silent switch to the bundled
model. Every write holds the lock, so the next start can delete what a killed writer left.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout

from ..settings import bundled_model_dir, home_dir
from ..store.atomic import atomic_write_bytes, atomic_write_json
from .card import CARD_NAME, ModelCard, is_version_name
from .model import UNet
from .model_io import LoadedModel, ModelLoadError, load_model, resolve_model_folder, save_model

POINTER_NAME = "CURRENT"
LOCK_NAME = ".registry.lock"
LOCK_TIMEOUT_S = 60.0  # the longest write under the lock is saving one model's weights
MAX_POINTER_BYTES = 256


class RegistryError(ValueError):
    pass


class PromotionConflict(RegistryError):
    """The current model changed while a candidate was being made (e.g. a rollback during a fine-tune)."""


class DamagedPointer(RegistryError):
    """``models/CURRENT`` exists but does not name a registered version."""


class Registry:
    def __init__(self, home: str | Path | None = None) -> None:
        self.home = Path(home) if home is not None else home_dir()
        self.models_dir = self.home / "models"
        self.pointer = self.models_dir / POINTER_NAME
        self.bundled_dir = bundled_model_dir()
        self._lock = FileLock(self.home / LOCK_NAME, timeout=LOCK_TIMEOUT_S)
        self.sweep()

    # -- reading ---------------------------------------------------------------
    @property
    def bundled_version(self) -> str:
        return ModelCard.read(self.bundled_dir / CARD_NAME).version

    def version_dirs(self) -> dict[str, Path]:
        found = {self.bundled_version: self.bundled_dir}
        if self.models_dir.is_dir():
            for folder in sorted(self.models_dir.iterdir()):
                if folder.is_dir() and is_version_name(folder.name) and (folder / CARD_NAME).is_file():
                    found[folder.name] = folder
        return found

    def read_cards(self) -> tuple[list[ModelCard], dict[str, str]]:
        """Every readable card (bundled first, then by age) and, per unreadable version, why."""
        cards, unreadable = [], {}
        for version, folder in self.version_dirs().items():
            try:
                cards.append(ModelCard.read(folder / CARD_NAME))
            except ValueError as exc:
                unreadable[version] = str(exc)  # a damaged card must not hide the others
        cards.sort(key=lambda c: (c.version != self.bundled_version, c.created))
        return cards, unreadable

    def cards(self) -> list[ModelCard]:
        return self.read_cards()[0]

    def current_version(self) -> str:
        """The version CURRENT names, or the bundled one when there is no CURRENT at all."""
        if not (self.pointer.exists() or self.pointer.is_symlink()):
            return self.bundled_version
        known = self.version_dirs()
        try:
            with open(self.pointer, "rb") as handle:
                name = handle.read(MAX_POINTER_BYTES).decode("utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise self._damaged(f"unreadable: {type(exc).__name__}", known) from None
        if not name:
            raise self._damaged("empty", known)
        if not is_version_name(name):
            raise self._damaged(f"{name[:40]!r} is not a version name", known)
        if name not in known:
            raise self._damaged(f"names {name!r}, which is not in the registry", known)
        return name

    def _damaged(self, why: str, known: dict[str, Path]) -> DamagedPointer:
        return DamagedPointer(
            f"{self.pointer} is damaged ({why}); repair it with `lung-unet models --rollback VERSION`, "
            f"VERSION one of: {', '.join(known)}"
        )

    def path_of(self, version: str) -> Path:
        dirs = self.version_dirs()
        if version not in dirs:
            raise RegistryError(f"unknown model version {version!r}; known: {', '.join(dirs)}")
        return dirs[version]

    def card(self, version: str) -> ModelCard:
        return ModelCard.read(self.path_of(version) / CARD_NAME)

    def resolve(self, name_or_path: str | Path | None = None) -> Path:
        """A version name, a path to a model folder/file, or None for the current version."""
        if name_or_path is None or str(name_or_path) == "":
            return self.path_of(self.current_version())
        if str(name_or_path) in self.version_dirs():
            return self.path_of(str(name_or_path))
        path = Path(name_or_path).expanduser()
        if path.exists():
            return resolve_model_folder(path)
        raise RegistryError(f"{name_or_path!r} is neither a registered model version nor an existing path")

    def load(self, name_or_path: str | Path | None = None) -> LoadedModel:
        return load_model(self.resolve(name_or_path))

    # -- writing (every write holds the lock) -------------------------------------
    @contextlib.contextmanager
    def locked(self, timeout: float | None = None) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=LOCK_TIMEOUT_S if timeout is None else timeout)
        except Timeout:
            raise RegistryError(f"the model registry is busy: another lung-unet process holds {self._lock.lock_file}") from None
        try:
            yield
        finally:
            self._lock.release()

    def sweep(self) -> None:
        """Delete what a killed writer left: hidden staging folders and temp files in models/.

        Only when no writer holds the lock (then every hidden entry is a leftover); a busy
        registry is swept by a later start.
        """
        if not self.models_dir.is_dir():
            return
        try:
            with self.locked(timeout=0):
                for entry in self.models_dir.iterdir():
                    if entry.name.startswith("."):
                        _remove(entry)
                    elif entry.is_dir() and not entry.is_symlink():
                        for leftover in entry.glob(".*.tmp*"):
                            _remove(leftover)
        except (RegistryError, OSError):
            pass  # busy, or a read-only home: nothing to clean that we could clean

    def new_version_name(self, prefix: str = "ft") -> str:
        # microseconds: two fine-tunes finishing in the same second must not collide after training
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
        existing = self.version_dirs()
        name, n = f"{prefix}-{stamp}", 1
        while name in existing:
            n += 1
            name = f"{prefix}-{stamp}-{n}"
        return name

    def add(self, model: UNet, card: ModelCard) -> Path:
        if not is_version_name(card.version):
            raise RegistryError(f"invalid version name {card.version!r}")
        with self.locked():
            if card.version in self.version_dirs() or (self.models_dir / card.version).exists():
                raise RegistryError(f"model version {card.version!r} already exists")
            self.models_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{card.version}.", dir=self.models_dir))
            try:
                save_model(staging, model, card)
                final = self.models_dir / card.version
                staging.rename(final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return final

    def update_card(self, card: ModelCard) -> None:
        folder = self.path_of(card.version)
        if folder == self.bundled_dir:
            raise RegistryError("the bundled default model is read-only")
        with self.locked():
            atomic_write_json(folder / CARD_NAME, card.to_dict())

    def set_current(self, version: str) -> None:
        """Promote or roll back: make ``version`` the one that ``predict`` uses; repairs a damaged CURRENT."""
        folder = self.path_of(version)
        try:
            load_model(folder)  # never point CURRENT at weights that do not load
        except ModelLoadError as exc:
            raise RegistryError(f"cannot make {version!r} current: {exc}") from exc
        with self.locked():
            self.models_dir.mkdir(parents=True, exist_ok=True)
            if self.pointer.is_dir() and not self.pointer.is_symlink():
                # a folder where the pointer file belongs: a rename cannot replace it; keep it, renamed, not deleted
                n, aside = 1, self.pointer.with_name(f"{POINTER_NAME}.damaged")
                while aside.exists() or aside.is_symlink():
                    n += 1
                    aside = self.pointer.with_name(f"{POINTER_NAME}.damaged-{n}")
                self.pointer.rename(aside)
            atomic_write_bytes(self.pointer, (version + "\n").encode("utf-8"))

    def promote(self, version: str, expected_current: str) -> None:
        """Make a fine-tuned ``version`` current, only if the current model is still ``expected_current``.

        A rollback made while the candidate trained must win: the candidate was gated against
        its parent only, so promoting it over another current model would undo the user's choice.
        The check and the switch happen under the lock, so no rollback can slip in between.
        The card says "promoted" only after the pointer has switched.
        """
        with self.locked():
            now = self.current_version()
            if now != expected_current:
                raise PromotionConflict(
                    f"not promoted: the current model changed from {expected_current} to {now} while {version} was trained; "
                    f"{version} stays in the registry (lung-unet models --rollback {version} makes it current)"
                )
            self.set_current(version)
            card = self.card(version)
            card.status = "promoted"
            self.update_card(card)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

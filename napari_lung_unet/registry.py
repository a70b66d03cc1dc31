"""Versioned model registry under the home folder, next to the bundled default model.

Layout::

    $LUNG_UNET_HOME/models/<version>/{weights.safetensors,card.json}
    $LUNG_UNET_HOME/models/CURRENT      # one line: the current version

A version folder is built under a temporary name and renamed into place, and CURRENT is
replaced atomically, so a crash at any point leaves the registry loadable and current unchanged.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from .atomic import atomic_write_bytes, atomic_write_json
from .card import CARD_NAME, ModelCard
from .model import UNet
from .model_io import LoadedModel, ModelLoadError, load_model, resolve_model_folder, save_model
from .settings import bundled_model_dir, home_dir

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RegistryError(ValueError):
    pass


class PromotionConflict(RegistryError):
    """The current model changed while a candidate was being made (e.g. a rollback during a fine-tune)."""


class Registry:
    def __init__(self, home: str | Path | None = None) -> None:
        self.home = Path(home) if home is not None else home_dir()
        self.models_dir = self.home / "models"
        self.bundled_dir = bundled_model_dir()

    # -- reading ---------------------------------------------------------------
    @property
    def bundled_version(self) -> str:
        return ModelCard.read(self.bundled_dir / CARD_NAME).version

    def version_dirs(self) -> dict[str, Path]:
        found = {self.bundled_version: self.bundled_dir}
        if self.models_dir.is_dir():
            for folder in sorted(self.models_dir.iterdir()):
                if folder.is_dir() and not folder.name.startswith(".") and (folder / CARD_NAME).is_file():
                    found[folder.name] = folder
        return found

    def cards(self) -> list[ModelCard]:
        cards = []
        for folder in self.version_dirs().values():
            try:
                cards.append(ModelCard.read(folder / CARD_NAME))
            except ValueError:
                continue  # a damaged card must not hide the others
        return sorted(cards, key=lambda c: (c.version != self.bundled_version, c.created))

    def current_version(self) -> str:
        pointer = self.models_dir / "CURRENT"
        if pointer.is_file():
            name = pointer.read_text(encoding="utf-8").strip()
            if name in self.version_dirs():
                return name
        return self.bundled_version

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

    # -- writing ---------------------------------------------------------------
    def new_version_name(self, prefix: str = "ft") -> str:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        existing = self.version_dirs()
        name, n = f"{prefix}-{stamp}", 1
        while name in existing:
            n += 1
            name = f"{prefix}-{stamp}-{n}"
        return name

    def add(self, model: UNet, card: ModelCard) -> Path:
        if not _VERSION_RE.match(card.version):
            raise RegistryError(f"invalid version name {card.version!r}")
        if card.version in self.version_dirs():
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
        atomic_write_json(folder / CARD_NAME, card.to_dict())

    def set_current(self, version: str) -> None:
        """Promote or roll back: make ``version`` the one that ``predict`` uses."""
        folder = self.path_of(version)
        try:
            load_model(folder)  # never point CURRENT at weights that do not load
        except ModelLoadError as exc:
            raise RegistryError(f"cannot make {version!r} current: {exc}") from exc
        self.models_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.models_dir / "CURRENT", (version + "\n").encode("utf-8"))

    def promote(self, version: str, expected_current: str) -> None:
        """Make a fine-tuned ``version`` current, only if the current model is still ``expected_current``.

        A rollback made while the candidate trained must win: the candidate was gated against
        its parent only, so promoting it over another current model would undo the user's choice.
        The card says "promoted" only after the pointer has switched.
        """
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

"""The worklist's lung-convention control: one combo box, a view of :class:`.dock_state.DockState`.

It shows the open worklist's convention (set from ``convention_changed``, which the state emits
when a worklist opens and when the choice changes) and writes the clinician's choice through
``state.set_convention``; it keeps no copy. Only the conventions the picked model knows can be
chosen: the others stay listed, greyed out, with a tooltip saying why (a model that knows one
convention refuses the other by name, so offering it would only end in an error).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QLabel, QVBoxLayout, QWidget

from ..images.conventions import CONVENTIONS, NAMES, default_for
from ..nn.card import CARD_NAME, ModelCard
from ..nn.registry import Registry
from . import strings
from .dock_state import DockState
from .qt_bits import narrow


def known_conventions(model: str | None) -> tuple[str | None, tuple[str, ...] | None]:
    """The picked model's version and the conventions its card lists (None, None: no readable card).

    A small JSON read on the GUI thread, as the Model box's own listing of the registry's cards.
    """
    try:
        card = ModelCard.read(Registry().resolve(model) / CARD_NAME)
    except (OSError, ValueError):  # a typed path being edited, a damaged CURRENT: nothing to restrict by
        return None, None
    return card.version, tuple(card.conventions)


def convention_tip(name: str) -> str:
    convention = CONVENTIONS[name]
    return f"{convention.title}: {convention.drawn}. Drawn this way: {convention.used_by}."


class ConventionBox(QWidget):
    def __init__(self, state: DockState, choose: Callable[[str | None], None] | None = None) -> None:
        super().__init__()
        self._state = state
        self._choose = choose or state.set_convention  # the review asks first when the open case is edited
        self._default = default_for(())  # what the picked model draws when none is chosen
        self.combo = narrow(QComboBox())
        for index, name in enumerate(NAMES):
            self.combo.addItem(name, name)
            self.combo.setItemData(index, convention_tip(name), Qt.ItemDataRole.ToolTipRole)
        self._tip = strings.CONVENTION_TIP + "\n\n" + "\n".join(f"{name}: {convention_tip(name)}" for name in NAMES)
        label = QLabel(strings.CONVENTION_LABEL)
        label.setToolTip(self._tip)
        column = QVBoxLayout(self)  # label above the box: side by side they widen a 240-px dock by 40 px
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(label)
        column.addWidget(self.combo)
        self.combo.currentIndexChanged.connect(self._chosen)
        state.convention_changed.connect(lambda _name: self.show_state())
        state.case_changed.connect(self.show_state)  # enabled only while a worklist is open
        state.model_changed.connect(self.show_model)
        state.models_changed.connect(self.show_model)
        self.show_model()

    def show_model(self) -> None:
        """The picked model's conventions are choosable; the others greyed out, with the reason."""
        version, known = known_conventions(self._state.model)
        self._default = default_for(known or ())
        items = self.combo.model()
        for index, name in enumerate(NAMES):
            usable = known is None or name in known
            items.item(index).setEnabled(usable)
            why = "" if usable else "\n" + strings.CONVENTION_UNKNOWN.format(
                version=strings.short_name(version or "this model"), known=", ".join(known or ()), name=name)
            self.combo.setItemData(index, convention_tip(name) + why, Qt.ItemDataRole.ToolTipRole)
        self.show_state()

    def show_state(self) -> None:
        state = self._state
        name = state.convention or self._default  # none chosen: the model's own (lung fields when it knows them)
        index = self.combo.findData(name)
        self.combo.blockSignals(True)  # showing the state is no choice
        self.combo.setCurrentIndex(index)
        self.combo.blockSignals(False)
        self.combo.setEnabled(state.worklist is not None)
        why = self.combo.itemData(index, Qt.ItemDataRole.ToolTipRole)
        closed = "" if state.worklist is not None else "\n\n" + strings.CONVENTION_NO_WORKLIST
        self.combo.setToolTip(f"{why}{closed}\n\n{self._tip}")

    def _chosen(self, index: int) -> None:
        if index >= 0:
            self._choose(self.combo.itemData(index))

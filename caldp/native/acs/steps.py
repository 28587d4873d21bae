"""calacs's calibration steps as records, and the one loop that runs them.

Every calacs step does the same five things: the trailer's switch line, on the first imset the
lines naming its references, the work itself, the ``<SWITCH> COMPLETE`` line, and on the first
imset the switch update and HISTORY (calacs.e's UpdateSwitch, ImgHistory and TabHistory).
A :class:`Step` says what is particular to one step; :func:`run_step` does the rest, so the
stages (acs2d, acsccd) are ordered tuples of steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from astropy.io import fits

from ..common.imageio import Imset
from ..common.keywords import COMPLETE, IGNORED, OMIT, PERFORM, ref_history, shown_state, update_switch
from ..common.refs import RefFile, RefSet
from ..common.trailer import Trailer
from .exposure import ExposureInfo


@dataclass
class StepContext:
    """What a step sees of the exposure while it calibrates one imset."""

    primary: fits.Header
    info: ExposureInfo
    refs: RefSet
    trailer: Trailer
    first: bool = True           # the first imset: references are named and HISTORY written
    extra: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name):  # the stage's own values: plan, imset info, CCD parameters...
        try:
            return self.__dict__["extra"][name]
        except KeyError:
            raise AttributeError(name) from None


def _always(ctx: StepContext) -> bool:
    return True


def _when_performed(state: str, ctx: StepContext) -> bool:
    return state == PERFORM


@dataclass(frozen=True)
class Step:
    """One calibration step.

    ``switch`` is the header switch (None for work that has no switch, such as the error array);
    ``state`` gives PERFORM, DUMMY or OMIT for this exposure; ``apply(imset, ctx)`` returns the
    calibrated imset and the outcome (PERFORM, or IGNORED when the step found it could not run).
    ``references`` are named in the trailer (image references without DESCRIP2, tables with it)
    and in HISTORY; hooks replace the default trailer lines or HISTORY where calacs.e differs.
    """

    switch: str | None
    apply: Callable[[Imset, StepContext], tuple[Imset, str]]
    state: Callable[[StepContext], str] = lambda ctx: PERFORM
    references: tuple[str, ...] = ()
    table: bool = False
    shown: Callable[[StepContext], bool] = _always
    runs: Callable[[str, StepContext], bool] = _when_performed
    names: Callable[[StepContext], None] | None = None
    announce: Callable[[StepContext, str], None] | None = None
    complete: Callable[[StepContext, str], None] | None = None
    history: Callable[[StepContext, str], None] | None = None
    plan: Callable[["Step", Any], dict[str, Any]] | None = None

    def given_references(self, refs: RefSet) -> list[RefFile]:
        found = (refs.get(key) for key in self.references)
        return [ref for ref in found if ref is not None and ref.given]


def name_reference(trailer: Trailer, ref: RefFile, table: bool, label: str | None = None) -> None:
    """The trailer lines naming a reference: name, PEDIGREE, DESCRIP (and a table's DESCRIP2)."""
    trailer.refinfo(label or ref.keyword.lower(), ref.name, ref.pedigree, ref.descrip,
                    ref.descrip2 if table else "")


def record_history(primary: fits.Header, step: Step, refs: RefSet, outcome: str) -> None:
    """UpdateSwitch, then each reference's HISTORY (an IGNORED image step names none)."""
    if update_switch(primary, step.switch, outcome) and (step.table or outcome != IGNORED):
        for ref in step.given_references(refs):
            ref_history(primary, ref, table=step.table)


def run_step(step: Step, imset: Imset, ctx: StepContext) -> Imset:
    """Run one step on one imset with calacs.e's trailer lines, switch update and HISTORY."""
    if step.switch is None:
        return step.apply(imset, ctx)[0]
    state = step.state(ctx)
    if step.announce is not None:
        step.announce(ctx, state)
    elif step.shown(ctx):
        ctx.trailer.message("\n")
        ctx.trailer.switch(step.switch, shown_state(state))
    if ctx.first and state != OMIT:
        if step.names is not None:
            step.names(ctx)
        else:
            for ref in step.given_references(ctx.refs):
                name_reference(ctx.trailer, ref, step.table)
    outcome = state
    if step.runs(state, ctx):
        imset, outcome = step.apply(imset, ctx)
        if step.complete is not None:
            step.complete(ctx, state)
        else:
            ctx.trailer.switch(step.switch, COMPLETE)
    if ctx.first and state != OMIT:
        if step.history is not None:
            step.history(ctx, outcome)
        else:
            record_history(ctx.primary, step, ctx.refs, outcome)
    return imset

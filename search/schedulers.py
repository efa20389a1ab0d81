"""ASHA that survives a driver restart.

Ray neither saves ASHA's rung records with the experiment nor calls the scheduler's
``save``/``restore``, so after ``Tuner.restore`` a fresh-looking ASHA compares new
results with nothing and prunes less. This subclass writes its state (the rungs:
trial id → metric per milestone) atomically after every decision and reloads it the
first time the restored experiment adds a trial.

The regularizers-off trials are never stopped: every verdict is a comparison with off,
and one stopped off seed would leave configurations without their reference (it happens
exactly when the regularizers help, i.e. off is the worse curve at a rung). Off still
records its metric in each rung, so the others are judged against it as before.
"""
from __future__ import annotations

import os
from pathlib import Path

from ray.tune.schedulers import ASHAScheduler, TrialScheduler


class PersistentASHA(ASHAScheduler):
    def __init__(self, state_file: str | os.PathLike, **kwargs):
        super().__init__(**kwargs)
        self._state_file = str(state_file)
        self._state_loaded = False

    def _load(self) -> None:
        if not self._state_loaded:
            if Path(self._state_file).is_file():
                self.restore(self._state_file)
            self._state_loaded = True

    def _persist(self) -> None:
        tmp = f"{self._state_file}.tmp"
        self.save(tmp)
        os.replace(tmp, self._state_file)

    def rung_records(self) -> list[dict[str, float]]:
        """Recorded metric per trial at each milestone (for inspection and tests)."""
        return [dict(recorded) for bracket in self._brackets for _, recorded in bracket._rungs]

    def on_trial_add(self, tune_controller, trial):
        self._load()
        super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        action = super().on_trial_result(tune_controller, trial, result)   # records off in the rung too
        if action == TrialScheduler.STOP and (trial.config or {}).get("is_off") \
                and result.get(self._time_attr, 0) < self._max_t:
            self._num_stopped -= 1
            action = TrialScheduler.CONTINUE
        self._persist()
        return action

    def on_trial_complete(self, tune_controller, trial, result):
        super().on_trial_complete(tune_controller, trial, result)
        self._persist()

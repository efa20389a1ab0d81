"""Searchers at configuration level: a trial is one configuration × one seed.

Both searchers hand out every configuration once per seed, the off configuration first,
and judge a configuration only when all its seeds are done (mean ``rd_score`` at the last
epoch). ``EnumeratedSearch`` walks a grid (choice-only spaces); ``FidelityAwareOptunaSearch``
asks Optuna (TPE seeded once per experiment, or random sampling) for the next configuration,
answers a configuration it has already seen from that configuration's trials instead of
training it again, and tells Optuna that configurations ASHA stopped early were *pruned*
(not complete at an early epoch).
"""
from __future__ import annotations

import pickle
from statistics import mean

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from ray.tune.search import Searcher

from spaces import Configuration, Param

from .plan import Plan

MAX_DUPLICATE_ASKS = 50   # consecutive already-seen suggestions before the space counts as exhausted
METRIC = "rd_score"


def n_startup_trials(num_samples: int) -> int:
    """TPE's random start, sized to the budget (Optuna's default 10 exceeds small budgets)."""
    return max(2, num_samples // 3)


def distribution(p: Param):
    if p.kind == "choice":
        return CategoricalDistribution(p.values)
    if p.kind == "int":
        return IntDistribution(int(p.low), int(p.high))
    return FloatDistribution(p.low, p.high, log=p.kind == "loguniform")


class ConfigurationSearcher(Searcher):
    """Configuration × seed bookkeeping shared by the searchers; subclasses pick configurations."""

    def __init__(self, plan: Plan):
        super().__init__(metric=METRIC, mode="min")
        self.plan = plan
        self.seeds = plan.seeds
        self.configurations: dict[str, Configuration] = {}
        self.queue: list[tuple[str, int]] = []             # (configuration id, seed) not yet handed out
        self.trials: dict[str, tuple[str, int]] = {}       # Tune trial id → (configuration id, seed)
        self.outcomes: dict[str, dict[int, tuple]] = {}    # configuration id → seed → outcome
        self.judged: dict[str, tuple] = {}                 # configuration id → outcome over its seeds

    # --- Tune's Searcher interface
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return not config    # the searcher owns the whole space; Tune's param_space stays empty

    def suggest(self, trial_id: str):
        if not self.queue:
            conf = self.next_configuration()
            if not isinstance(conf, Configuration):
                return conf                                  # None (wait) or Searcher.FINISHED
            self.configurations[conf.id] = conf
            self.queue = [(conf.id, seed) for seed in self.seeds]
        conf_id, seed = self.queue.pop(0)
        self.trials[trial_id] = (conf_id, seed)
        return self.plan.trial_params(self.configurations[conf_id], seed)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id not in self.trials:
            return
        conf_id, seed = self.trials[trial_id]
        epoch = (result or {}).get("epoch", 0)
        if error or not result or METRIC not in result:
            outcome = ("error",)
        elif epoch < self.plan.config.max_epochs:
            outcome = ("stopped", epoch)
        else:
            outcome = ("done", float(result[METRIC]))
        seeds = self.outcomes.setdefault(conf_id, {})
        seeds[seed] = outcome
        if len(seeds) == len(self.seeds) and conf_id not in self.judged:
            kinds = {o[0] for o in seeds.values()}
            judged = ("error",) if "error" in kinds else ("stopped",) if "stopped" in kinds else \
                ("done", mean(o[1] for o in seeds.values()))
            self.judged[conf_id] = judged
            self.configuration_judged(conf_id, judged)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def get_state(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "plan"}

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)

    # --- for subclasses
    def pending(self) -> bool:
        """Some configuration handed out is not judged yet."""
        return any(c not in self.judged for c in self.configurations)

    def next_configuration(self):
        raise NotImplementedError

    def configuration_judged(self, conf_id: str, outcome: tuple) -> None:
        pass


class EnumeratedSearch(ConfigurationSearcher):
    """The plan's configurations in order (off first), each once per seed."""

    def __init__(self, plan: Plan):
        super().__init__(plan)
        self.index = 0

    def next_configuration(self):
        if self.index >= len(self.plan.configurations):
            return Searcher.FINISHED
        self.index += 1
        return self.plan.configurations[self.index - 1]


class FidelityAwareOptunaSearch(ConfigurationSearcher):
    """Optuna over configurations: TPE (``sampler="tpe"``) or random, seeded once; the off
    configuration first; ``num_samples`` distinct configurations (off included)."""

    def __init__(self, plan: Plan, sampler: str = "tpe"):
        super().__init__(plan)
        seed, budget = plan.config.seed, plan.config.num_samples
        chosen = (optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup_trials(budget))
                  if sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.study = optuna.create_study(direction="minimize", sampler=chosen)
        self.distributions = {k: distribution(p) for k, p in plan.space.searched.items()}
        self.waiting: dict[str, list[int]] = {}    # configuration id → Optuna trial numbers to tell
        self.started = 0
        self.off_sent = False
        self.duplicates = 0                        # asks answered without training
        self.stalled = False                       # MAX_DUPLICATE_ASKS duplicates in a row

    def next_configuration(self):
        if not self.off_sent:
            self.off_sent, self.started = True, 1
            if self.distributions and self.plan.configuration(self.plan.space.off_values()).is_off:
                self.study.enqueue_trial(self.plan.space.off_values())   # TPE learns off's value too
            return self.plan.off
        if self.started >= self.plan.config.num_samples or not self.distributions:
            return Searcher.FINISHED
        if self.stalled:   # the last asks found nothing new: wait for a result that changes the model
            return None if self.pending() else Searcher.FINISHED
        for _ in range(MAX_DUPLICATE_ASKS):
            trial = self.study.ask(self.distributions)
            conf = self.plan.configuration(trial.params)
            self.waiting.setdefault(conf.id, []).append(trial.number)
            if conf.id in self.judged:             # seen and finished: answer from its trials
                self.duplicates += 1
                self.configuration_judged(conf.id, self.judged[conf.id])
            elif conf.id in self.configurations:   # seen, still training: told when it is judged
                self.duplicates += 1
            else:
                self.started += 1
                return conf
        self.stalled = True
        return None if self.pending() else Searcher.FINISHED

    def configuration_judged(self, conf_id: str, outcome: tuple) -> None:
        self.stalled = False
        for number in self.waiting.pop(conf_id, []):
            if outcome[0] == "done":
                self.study.tell(number, outcome[1])
            else:
                self.study.tell(number, state=TrialState.PRUNED if outcome[0] == "stopped" else TrialState.FAIL)

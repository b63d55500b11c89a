"""Query pipelines: ordered stages per request, with explain traces and measured recall.

A pipeline is a list of one-key objects ``{name: {args}}``. The first stage produces
candidates (a generator or a fusion of generators); every later stage re-scores or cuts
them, and may not ask for more than it is given::

    [{"index": {"k": 100}}, {"ip": {"k": 10}}]
    [{"rrf": {"of": [{"index": {"k": 50}}, {"lexical": {"k": 50}}], "k": 10}}]

Stages work on ``(point id, score)`` lists, best first. :data:`REGISTRY` lists every stage:
generators (:mod:`~app.pipeline.generators`, :mod:`~app.pipeline.lexical`), fusion
(:mod:`~app.pipeline.fusion`) and re-scorers and cuts (:mod:`~app.pipeline.rescorers`).
"""

from app.pipeline.base import Candidate, Context, Stage, Trace
from app.pipeline.fusion import rrf, weighted
from app.pipeline.plan import REGISTRY, Plan, Result, build, parse, run

__all__ = [
    "REGISTRY",
    "Candidate",
    "Context",
    "Plan",
    "Result",
    "Stage",
    "Trace",
    "build",
    "parse",
    "rrf",
    "run",
    "weighted",
]

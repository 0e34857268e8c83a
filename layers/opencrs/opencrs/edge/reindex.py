"""The re-index function's edge: one step of the re-index state machine in, its result
out. Not an API route: Step Functions invokes it (template.yaml, ``ReindexStateMachine``),
and so can an operator. A step it cannot read raises ``ReindexRefused``, a switch that
finds the library written to raises ``LibraryChanged``: Step Functions sees each as a
task error of that name (the state machine plans again on the second)."""

from __future__ import annotations

from typing import Any

from opencrs.domain.reindex import (
    BuiltShard,
    ReindexPlan,
    ReindexRefused,
    count_field,
    shard_count,
    text_field,
)
from opencrs.usecases.reindex import Reindex

STEPS = ("plan", "build", "switch", "abandon")


def run_reindex_step(reindex: Reindex, event: object) -> dict[str, Any]:
    step = event.get("step") if isinstance(event, dict) else None
    if step not in STEPS:
        raise ReindexRefused(f"a re-index step is one of {', '.join(STEPS)}, not {step!r}")
    assert isinstance(event, dict)
    if step == "plan":
        attempt = count_field(event, "attempt", 1) if "attempt" in event else 1
        plan = reindex.plan(text_field(event, "gallery"), shard_count(event), attempt)
        return {"plan": plan.to_fields(), "shards": list(range(plan.shards))}
    plan = ReindexPlan.from_fields(event.get("plan"))
    if step == "build":
        return reindex.build(plan, count_field(event, "shard")).to_fields()
    if step == "switch":
        built = event.get("built")
        if not isinstance(built, list):
            raise ReindexRefused("a switch needs 'built', the list of built shards")
        targets = reindex.switch(plan, [BuiltShard.from_fields(b) for b in built])
        return {"gallery": plan.gallery, "shards": plan.shards, "targets": targets}
    reindex.abandon(plan)
    return {"gallery": plan.gallery, "abandoned": plan.run}

"""Finding 4 of the study: MSCE (multi-stage context enrichment) on micro-expression clips.

On the clips flagged ``micro``: Δ UAR of ``msce`` (keyframes + motion descriptions)
against ``none`` (the keyframes alone) and against ``msce-dense`` (the keyframes plus the
in-between frames themselves), every other setting equal, paired clip bootstrap. The
primary comparison: the study's VLM, ``msce`` against ``none`` at its reference cell.
"""

from __future__ import annotations

from emobench.report import analysis as an
from emobench.report.findings import FindingRun, Part, register_finding
from emobench.report.findings_common import (
    PAIRED,
    paired,
    primary_rank,
    reference_variant,
    sampling,
)


@register_finding(
    "msce",
    "MSCE on micro-expression clips",
    "On the clips flagged `micro`: Δ UAR of `msce` (keyframes + motion descriptions) "
    "against `none` (the keyframes alone) and against `msce-dense` (the keyframes plus the "
    "in-between frames themselves), every other setting equal, paired clip bootstrap; "
    "observed when the Δ is above 0 with Holm-adjusted p < 0.05. Primary comparison: the "
    "VLM, `msce` against `none`.",
)
def _msce(run: FindingRun) -> None:
    ctx = run.ctx
    for ds, info in ctx.infos.items():
        rows = ctx.dataset_rows(ds)
        others = [c for c in ctx.settings if c != "enrichment"]
        twins = {
            (str(r.get("enrichment")), tuple(str(r.get(c)) for c in others)): str(r["cell_id"])
            for r in rows
        }
        msce = [
            r
            for r in rows
            if r.get("enrichment") == "msce" and r.get("order") in (None, "original")
        ]
        if not msce:
            run.lack(ds, "no `msce` cell (original frame order)")
            continue
        for row in sorted(msce, key=reference_variant):
            key = tuple(str(row.get(c)) for c in others)
            cid, model = str(row["cell_id"]), str(row["model"])
            none = next((v for (e, k), v in twins.items() if k == key and an.is_off(e)), None)
            dense = twins.get(("msce-dense", key))
            for base, name in ((none, "none"), (dense, "msce-dense")):
                if base is None:
                    run.lack(
                        ds,
                        f"`{model}` at {sampling(row)}: no `{name}` cell to compare `msce` with",
                    )
                    continue
                micro = paired(run, base, cid, info.labels, micro_only=True)
                if micro is None:
                    run.lack(ds, f"`{model}` at {sampling(row)}: no clip flagged `micro`")
                    continue
                every = paired(run, base, cid, info.labels)
                rest = "" if every is None else f" (all {every.n} clips: {every.diff.text()})"
                run.say(
                    ds,
                    f"`{model}` at {sampling(row)}: UAR {micro.base.value:.3f} → "
                    f"{micro.new.value:.3f}, Δ (msce − {name}) = {micro.diff.text()} on "
                    f"{micro.n} micro-expression clips{rest}",
                    micro.diff,
                    +1,
                    p=micro.p,
                    method=PAIRED,
                    subject=f"`{model}` msce − {name} at {sampling(row)}, {ds}",
                    primary=primary_rank(
                        run, ds, run.role(row), None, name != "none", reference_variant(row)
                    ),
                    parts=(Part(model, f"msce − {name}", micro.diff, run.role(row).role or ""),),
                )

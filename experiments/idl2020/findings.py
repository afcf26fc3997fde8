"""REPORT.md's verdicts on the study's findings, each computed from the rows of the table it cites,
and what the steps beyond the study showed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.idl2020.runs import Run, name


def verdict(holds: bool) -> str:
    return "**holds**" if holds else "**does not hold**"


def preprocessing(preproc: dict[str, Run], bal: pd.DataFrame, seed_std: float) -> list[str]:
    """Findings 1 and 2, from table 1 (and table 3 for oversampling without augmentation)."""
    if not {"split", "augment", "augment_oversample"} <= preproc.keys():
        return []
    d_aug = preproc["augment"].m("test/f1_micro") - preproc["split"].m("test/f1_micro")
    d_aug_val = preproc["augment"].m("val/f1_micro") - preproc["split"].m("val/f1_micro")
    found = [
        f"1. **Augmentation barely matters**: {verdict(abs(d_aug) <= max(0.01, 2 * seed_std))}. Adding the study's "
        f"augmentation changes test F1 by {d_aug:+.4f} and val F1 by {d_aug_val:+.4f} (table 1), against a "
        f"seed-to-seed spread of up to {seed_std:.4f} (table 5)."]
    a, o = preproc["augment"], preproc["augment_oversample"]
    d_p = o.m("test/precision") - a.m("test/precision")
    d_r = o.m("test/recall") - a.m("test/recall")
    extra = ""
    if not bal.empty:
        bal_none = bal[(bal["balance"] == "none") & (bal["loss"] == "bce")]
        bal_os = bal[(bal["balance"] == "oversample") & (bal["loss"] == "bce")]
        extra = (f" On the baseline without augmentation (table 3) oversampling moves precision by "
                 f"{bal_os['test P'].iloc[0] - bal_none['test P'].iloc[0]:+.4f} and recall by "
                 f"{bal_os['test R'].iloc[0] - bal_none['test R'].iloc[0]:+.4f}.")
    found.append(
        f"2. **Oversampling hurts precision**: {verdict(d_p < 0)}. Oversampling on top of augmentation moves test "
        f"precision by {d_p:+.4f} and recall by {d_r:+.4f} (table 1).{extra}")
    return found


def hidden_layer(transfer: dict[tuple[str, str, str], Run]) -> list[str]:
    """Finding 3, from the frozen linear / hidden pairs of table 2."""
    pairs = [(k, transfer[k], transfer[(k[0], k[1], "256 hidden")]) for k in transfer
             if k[2] == "linear" and (k[0], k[1], "256 hidden") in transfer]
    if not pairs:
        return []
    deltas = [h.m("test/f1_micro") - lin.m("test/f1_micro") for _, lin, h in pairs]
    return [f"3. **The hidden layer brings little**: {verdict(abs(float(np.mean(deltas))) <= 0.01)}. Over the "
            f"{len(pairs)} frozen backbone/input pairs of table 2, the 256-unit hidden layer changes test F1 by "
            f"{np.mean(deltas):+.4f} on average (from {min(deltas):+.4f} to {max(deltas):+.4f})."]


def scratch_gap(scratch: list[Run], transfer: dict[tuple[str, str, str], Run]) -> list[str]:
    """Finding 4: the best scratch CNN against the best frozen transfer model at 128 px (table 2)."""
    frozen128 = [r for k, r in transfer.items() if k[1] == "128"]
    if not (scratch and frozen128):
        return []
    bs = max(scratch, key=lambda r: r.m("test/f1_micro"))
    bt = max(frozen128, key=lambda r: r.m("test/f1_micro"))
    gap = bt.m("test/f1_micro") - bs.m("test/f1_micro")
    return [f"4. **Scratch CNNs are far behind transfer**: {verdict(gap > 0.05)}. The best scratch CNN ({name(bs)}, "
            f"{bs.summary.epochs} epochs) reaches test F1 {bs.m('test/f1_micro'):.4f}, the best frozen transfer "
            f"model at the same 128 px ({name(bt)}) {bt.m('test/f1_micro'):.4f}: {gap:.4f} behind (table 2)."]


def ensemble(transfer: dict[tuple[str, str, str], Run], seed_std: float) -> list[str]:
    """Finding 5: each ensemble against its best member at the same sizes (table 2)."""
    parts, deltas = [], []
    for (model, size, head), r in [(k, r) for k, r in transfer.items() if "+" in k[0]]:
        members = [transfer.get((f"{m.strip()} frozen", s, head)) for m, s in
                   zip(model.replace(" frozen", "").split("+"), size.split("/"))]
        if all(members):
            best_member = max(members, key=lambda x: x.m("test/f1_micro"))
            deltas.append(r.m("test/f1_micro") - best_member.m("test/f1_micro"))
            parts.append(f"at {size} px {r.m('test/f1_micro'):.4f} against its best member "
                         f"({name(best_member)}) {best_member.m('test/f1_micro'):.4f}")
    if not deltas:
        return []
    return [f"5. **The ensemble is slightly better**: {verdict(all(0 < d <= 0.03 for d in deltas))}. The Lite0 + "
            f"Lite2 ensemble's test F1 is " + "; ".join(parts) + " (table 2; differences "
            + ", ".join(f"{d:+.4f}" for d in deltas) + f", seed spread up to {seed_std:.4f})."]


def beyond_the_study(bal: pd.DataFrame, thr_means: list[dict[str, float]]) -> list[str]:
    """What balancing without copies and per-class thresholds did, from tables 3 and 4."""
    out = []
    if not bal.empty:
        plain = bal[(bal["balance"] == "none") & (bal["loss"] == "bce")].iloc[0]
        best = bal.loc[bal["test F1"].idxmax()]
        others = bal.drop(plain.name)
        out.append(
            f"- **Balancing** (table 3): the best variant by test F1 at 0.5 is balance={best['balance']}, "
            f"loss={best['loss']} ({best['test F1']:.4f}; no balancing {plain['test F1']:.4f}). Against no "
            f"balancing the other {len(others)} variants move test precision by "
            f"{(others['test P'] - plain['test P']).min():+.4f} to {(others['test P'] - plain['test P']).max():+.4f} "
            f"and recall by {(others['test R'] - plain['test R']).min():+.4f} to "
            f"{(others['test R'] - plain['test R']).max():+.4f}, and macro F1 by "
            f"{(others['test macro F1'] - plain['test macro F1']).min():+.4f} to "
            f"{(others['test macro F1'] - plain['test macro F1']).max():+.4f}.")
    if thr_means:
        d_global = np.mean([t["test @global"] - t["test @0.5"] for t in thr_means])
        d_label = np.mean([t["test @per-label"] - t["test @global"] for t in thr_means])
        out.append(
            f"- **Per-class thresholds** (table 4): averaged over the {len(thr_means)} seeded configurations, one "
            f"val-fitted threshold moves test F1 by {d_global:+.4f} against 0.5, and one threshold per label by "
            f"{d_label:+.4f} against the single one.")
    return ["## Beyond the study", "", *out, ""] if out else []

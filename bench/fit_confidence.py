"""Fit the confidence's weights (knockout.confidence._BIAS, _FITTED) and say how well they generalise.

Reads the per-image CSV of ``bench/quality.py --configs threshold,kmeans --csv FILE`` (real portraits: IoU
of the output's alpha and the confidence's signals). A cut-out failed when its IoU is below 0.90.
The weights of the evidence of degree (log(1 + unstable_px), the colour overlap, no face) are fitted
by a logistic regression; the leak and head-top evidence keeps its fixed weight (an offset). Prints
the fitted weights, the cross-validated AUROC (10 x 5 folds: the figure to expect on portraits the
fit never saw), the AUROC of the weights in use (computed from the CSV's signals with
``knockout.confidence``), and the shares of failed and of good (IoU >= 0.95) cut-outs flagged at a
few values of review_below. Usage:

    python bench/fit_confidence.py FILE.csv [threshold|kmeans]
"""

from __future__ import annotations

import csv
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from knockout import confidence as C

CONFIG = sys.argv[2] if len(sys.argv) > 2 else "threshold"
FITTED = ("unstable", "low-contrast", "no-face")


def _signals(r: dict) -> tuple[dict[str, float], bool]:
    sig = {k: float(r[k]) for k in ("unstable_px", "mixed", "border", "face_kept", "crown_kept") if r.get(k, "") != ""}
    return sig, r["face"] == "True"


def _evidence(sig: dict[str, float], face: bool) -> tuple[list[float], float]:
    """The fitted terms' evidence, and the fixed terms' contribution to the log-odds (as knockout weighs them)."""
    _, evidence = C._weigh(sig, has_face=face)
    return [evidence[k] for k in FITTED], sum(w * evidence.get(k, 0.0) for k, w in C._FIXED.items())


def main() -> int:
    rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["config"] == CONFIG]
    if not rows:
        sys.exit(f"{sys.argv[1]}: no {CONFIG} rows; run bench/quality.py --configs {CONFIG} --csv FILE")
    parsed = [_signals(r) for r in rows]
    ev = [_evidence(sig, face) for sig, face in parsed]
    x = np.array([e[0] for e in ev])
    offset = np.array([e[1] for e in ev])
    iou = np.array([float(r["iou"]) for r in rows])
    bad, good = iou < 0.90, iou >= 0.95
    model = LogisticRegression(C=1.0, max_iter=2000)
    aurocs, false_alarms = [], []
    for seed in range(10):
        folds = StratifiedKFold(5, shuffle=True, random_state=seed)
        odds = cross_val_predict(model, x, bad, cv=folds, method="decision_function") + offset
        aurocs.append(roc_auc_score(bad, odds))
        false_alarms.append(np.mean(odds[good] >= np.quantile(odds[bad], 0.15)))
    fit = model.fit(x, bad)
    print(f"{len(rows)} cut-outs, {bad.sum()} failed (IoU < 0.90), {good.sum()} good (IoU >= 0.95)")
    weights = ", ".join(f"{n} {w:.2f}" for n, w in zip(FITTED, fit.coef_[0], strict=True))
    print(f"fitted ({CONFIG}): _BIAS = {fit.intercept_[0]:.2f}, _FITTED = {weights}")
    alarms = 100 * np.mean(false_alarms)
    print(f"cross-validated AUROC {np.mean(aurocs):.3f}; good flagged where 85 % of failed are: {alarms:.0f} %")
    used = np.array([C._judge(sig, has_face=face, method=CONFIG)[0] for sig, face in parsed])
    print(f"weights in use (knockout.confidence): AUROC {roc_auc_score(bad, -used):.3f} (in sample)")
    for t in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9):
        f = used < t
        shares = f"{100 * f[bad].mean():3.0f} % of failed flagged, {100 * f[good].mean():3.0f} % of good"
        print(f"  review_below {t:.2f}: {shares}, {100 * f.mean():3.0f} % of all")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Reference side of sklearn_test.go: fit scikit-learn's IsolationForest on
CSV files the Go test wrote and print their ROC AUCs as JSON.

usage: compare.py DATA.csv... [--trees 100] [--psi 256] [--seeds 0,1,2]

Output: a JSON list with, per file in argument order, {"auc": mean over
seeds, "aucs": [per seed], "sklearn": version}.

The CSV has a header row, then one row per point: label (1 = injected
anomaly, 0 = normal) followed by the point's features. For each seed the
forest is fitted on every point and scores every point; the AUC uses
-score_samples, which is sklearn's anomaly score (higher = more anomalous).
"""
import argparse
import json
import sys

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--psi", type=int, default=256)
    ap.add_argument("--seeds", default="0")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    out = []
    for path in a.csv:
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        y, X = data[:, 0].astype(int), data[:, 1:]
        aucs = []
        for seed in seeds:
            f = IsolationForest(n_estimators=a.trees, max_samples=a.psi, random_state=seed).fit(X)
            aucs.append(float(roc_auc_score(y, -f.score_samples(X))))
        out.append({"auc": sum(aucs) / len(aucs), "aucs": aucs, "sklearn": sklearn.__version__})
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Compares latent's roc_auc and average_precision with scikit-learn's roc_auc_score and
average_precision_score on random cases with ties, and prints the largest absolute difference.

Build the program it drives, then run it with a Python that has scikit-learn (Debian's
python3-sklearn is /usr/bin/python3's):
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLATENT_BUILD_CROSSCHECKS=ON
    cmake --build build --target detection_metrics_cases
    /usr/bin/python3 tests/crosscheck/sklearn_metrics.py build/tests/crosscheck/detection_metrics_cases
Exit status 0 when both differences are at most 1e-12, 1 otherwise.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, roc_auc_score

TOLERANCE = 1e-12


def random_cases(rng, count):
    """Cases of 2 to 5000 samples; scores drawn from few distinct values (many ties), from
    rounded normals (some ties) or continuous; positive fractions from 1% to 99%."""
    cases = []
    for index in range(count):
        size = int(rng.choice([2, 3, 5, 10, 50, 200, 1000, 5000]))
        fraction = rng.uniform(0.01, 0.99)
        labels = (rng.uniform(size=size) < fraction).astype(int)
        labels[0], labels[-1] = 0, 1  # both classes present
        kind = index % 3
        if kind == 0:
            scores = rng.integers(0, int(rng.integers(1, 6)), size=size).astype(float)
        elif kind == 1:
            scores = np.round(rng.normal(labels * rng.uniform(0, 2), 1.0, size=size), 1)
        else:
            scores = rng.normal(labels * rng.uniform(0, 2), 1.0, size=size)
        cases.append((labels, scores))
    return cases


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: sklearn_metrics.py PATH_TO_detection_metrics_cases")
    rng = np.random.default_rng(20181)
    cases = random_cases(rng, 600)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as file:
        for labels, scores in cases:
            file.write(f"{len(labels)}\n{' '.join(map(str, labels))}\n{' '.join(repr(float(s)) for s in scores)}\n")
        path = file.name
    try:
        output = subprocess.run([sys.argv[1], path], check=True, capture_output=True, text=True).stdout
    finally:
        os.remove(path)
    latent_values = [tuple(map(float, line.split())) for line in output.splitlines()]
    if len(latent_values) != len(cases):
        sys.exit(f"expected {len(cases)} result lines, got {len(latent_values)}")
    auc_difference = max(abs(value[0] - roc_auc_score(l, s)) for value, (l, s) in zip(latent_values, cases))
    ap_difference = max(abs(value[1] - average_precision_score(l, s)) for value, (l, s) in zip(latent_values, cases))
    ties = sum(len(np.unique(s)) < len(s) for _, s in cases)
    print(f"scikit-learn {sklearn.__version__}, numpy {np.__version__}: {len(cases)} cases "
          f"({ties} with tied scores), sizes 2-5000")
    print(f"RESULT max_abs_difference_roc_auc={auc_difference:.3g} "
          f"max_abs_difference_average_precision={ap_difference:.3g} tolerance={TOLERANCE:g}")
    return 0 if max(auc_difference, ap_difference) <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())

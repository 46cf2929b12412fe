#!/usr/bin/env python3
"""Reference tour lengths for route_bench: LKH-3 (through the `elkai` PyPI package) on the
instances that `route_bench --write-instances DIR` writes (TSPLIB, EXPLICIT FULL_MATRIX,
integer metres).

    python3 -m venv /tmp/lkh && /tmp/lkh/bin/pip install elkai==2.0.1
    cargo run --release -p pharmalink-contracts --example route_bench -- --write-instances /tmp/route-inst
    /tmp/lkh/bin/python contracts/examples/route_reference.py /tmp/route-inst > contracts/examples/route_reference.json

Each length is recomputed here from the matrix and LKH's tour (closed tour through the depot).
"""
import json
import pathlib
import sys
import time

import elkai


def read_tsplib(path):
    lines = path.read_text().split("\n")
    n = None
    rows = []
    in_section = False
    for line in lines:
        line = line.strip()
        if line.startswith("DIMENSION"):
            n = int(line.split(":")[1])
        elif line == "EDGE_WEIGHT_SECTION":
            in_section = True
        elif line == "EOF":
            break
        elif in_section and line:
            rows.append([int(x) for x in line.split()])
    assert n is not None and len(rows) == n and all(len(r) == n for r in rows), path
    return rows


def runs_for(n):
    return 10 if n <= 200 else 3


def main():
    folder = pathlib.Path(sys.argv[1])
    lengths = {}
    seconds = {}
    for path in sorted(folder.glob("*.tsp"), key=lambda p: (int(p.stem.split("-")[1]), p.stem)):
        m = read_tsplib(path)
        n = len(m)
        t = time.time()
        tour = elkai.DistanceMatrix(m).solve_tsp(runs=runs_for(n))
        seconds[path.stem] = round(time.time() - t, 2)
        assert tour[0] == tour[-1] and sorted(tour[:-1]) == list(range(n)), path
        lengths[path.stem] = sum(m[a][b] for a, b in zip(tour, tour[1:]))
        print(path.stem, lengths[path.stem], seconds[path.stem], file=sys.stderr, flush=True)
    json.dump(
        {
            "source": "LKH-3 via elkai 2.0.1 (PyPI), DistanceMatrix.solve_tsp(runs=10 for <= 200 stops, 3 above), "
            "integer metres, closed tour; written by contracts/examples/route_reference.py",
            "lengths": lengths,
            "lkh_seconds": seconds,
        },
        sys.stdout,
        indent=1,
        sort_keys=True,
    )
    print()


if __name__ == "__main__":
    main()

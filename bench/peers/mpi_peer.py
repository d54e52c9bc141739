"""mpi4py.futures' MPIPoolExecutor: the peer of bench/bench_mpi.cpp.

bench/run.py launches it as bench_mpi is launched, a master and two workers
on this host, under Debian's interpreter (python3-mpi4py is built against
the same Open MPI as mp::mpi):
    scripts/mpirun.sh -n 3 /usr/bin/python3 -m mpi4py.futures bench/peers/mpi_peer.py
The executor uses the two worker ranks that mpirun started. Options are
mpi4py's defaults (its map's default chunksize is 1, its idle workers back
off up to 1 ms), as a user meets them. Its default map is one task per
message, as slow per task as chunksize 1 and no faster with more items, so
it maps 20k items where mp maps 200k: 200k took over 600 s here under load.
"""
import os
import sys

# The peer bench/peers/subprocess.py would shadow the standard module; the
# worker ranks load this file too (as __mp_main__), so they strip it as well.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import time  # noqa: E402

from mpi4py.futures import MPIPoolExecutor  # noqa: E402

MAP_ITEMS = 20_000  # bench_mpi.cpp maps 200k with its default chunking
CHUNKSIZE1_ITEMS = 20_000  # the same counts as bench_mpi.cpp from here on
APPLY_CALLS = 2_000


def square(x):
    return x * x


def report(workload, operations, body):
    """Runs body and prints its time per operation as the RESULT line bench/run.py reads."""
    start = time.perf_counter_ns()
    body()
    print(f"RESULT {workload} python {(time.perf_counter_ns() - start) / operations:.1f} ns/op", flush=True)


def main():
    with MPIPoolExecutor() as executor:
        list(executor.map(square, range(2_000)))  # the workers are up and have run the task once
        report("mpi_map_default", MAP_ITEMS, lambda: sum(executor.map(square, range(MAP_ITEMS))))
        report("mpi_map_chunksize1", CHUNKSIZE1_ITEMS,
               lambda: sum(executor.map(square, range(CHUNKSIZE1_ITEMS), chunksize=1)))
        report("mpi_apply_roundtrip", APPLY_CALLS,
               lambda: [executor.submit(square, i).result() for i in range(APPLY_CALLS)])


if __name__ == "__main__":
    main()

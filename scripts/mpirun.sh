#!/usr/bin/env bash
# mpirun as mp runs it on one host (make demo-mpi, the mpi test suite,
# bench/run.py): --oversubscribe, since -n may exceed the cores, and, as root
# only (a container, CI), the two variables without which Open MPI refuses to
# start. Usage: scripts/mpirun.sh -n 3 program [args...]
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
exec mpirun --oversubscribe "$@"

#!/bin/sh
# Run ./work.sh on every line of ITEMS as a Torque/PBS array of TASKS
# tasks, and a master in a job that runs after the whole array.
#   export ZKDOG_ZK=zk1:2181,zk2:2181,zk3:2181
#   ./submit.sh items.txt 50
set -eu
items=$1 tasks=$2
export ZKDOG_ROOT="${ZKDOG_ROOT:-/zkdog/$(id -un)/$(date +%Y%m%d-%H%M%S)-$$}"
zkdog init --items "$items" --timer "${TIMER:-10m}"
# -V passes ZKDOG_ZK and ZKDOG_ROOT to the jobs.
array=$(qsub -V -t 1-"$tasks" task.sh)
# Torque proper wants afterokarray:$array[] here; on Slurm's qsub,
# Slurm's own dependency types pass through.
master=$(qsub -V -W depend=afterany:"$array" wait.sh)
echo "job $ZKDOG_ROOT: array $array, master $master"

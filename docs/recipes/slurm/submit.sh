#!/bin/sh
# Run ./work.sh on every line of ITEMS as a Slurm array of TASKS tasks,
# with a zkdog master watching them from a job of its own.
#   export ZKDOG_ZK=zk1:2181,zk2:2181,zk3:2181
#   ./submit.sh items.txt 50
set -eu
items=$1 tasks=$2
export ZKDOG_ROOT="${ZKDOG_ROOT:-/zkdog/$(id -un)/$(date +%Y%m%d-%H%M%S)-$$}"
# The job exists before any task can start, so no task finds it missing.
zkdog init --items "$items" --timer "${TIMER:-10m}"
array=$(sbatch --parsable --array=1-"$tasks" task.sh)
# The master runs beside the tasks: it sees a hung task at once and then
# stops the others, instead of waiting for the time limit.
master=$(sbatch --parsable wait.sh)
# A follow-on step starts once, when every item is done:
#   sbatch --dependency=afterok:$master next-step.sh
echo "job $ZKDOG_ROOT: array $array, master $master"

#!/bin/sh
#SBATCH --job-name=zkdog-master
# Exits 0 when every item is done, 1 when some failed, 3 when a task hung
# (it is named in the report), 5 when items were lost.
exec zkdog wait --json >"zkdog-report-$SLURM_JOB_ID.json"

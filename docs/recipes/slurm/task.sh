#!/bin/sh
#SBATCH --job-name=zkdog-task
# exec: zkdog must be the batch script's own process, which is what
# scancel and the time limit signal; it passes the signal to the work and
# waits for it. A wrapper shell in between would be killed with the work
# still running.
exec zkdog run --loop --until-done -- ./work.sh {}

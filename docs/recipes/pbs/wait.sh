#!/bin/sh
#PBS -N zkdog-master
cd "${PBS_O_WORKDIR:-.}"
exec zkdog wait --json >"zkdog-report-${PBS_JOBID%%.*}.json"

#!/bin/sh
#PBS -N zkdog-task
cd "${PBS_O_WORKDIR:-.}"
exec zkdog run --loop --until-done -- ./work.sh {}

#!/bin/sh
# The demo's "legacy binary": it works on one item for a second or two,
# printing as it goes. An item with "hang" in its name blocks for ever
# without using CPU or writing anything, like a task stuck on a dead NFS
# mount: alive to the scheduler, dead to the job.
item=$1
echo "  [$ZKDOG_ID] working on $item"
case $item in
*hang*) exec sleep 100000 ;;
esac
i=0
while [ $i -lt 3 ]; do
	sleep 0.$(( $(od -An -N1 -tu1 /dev/urandom) % 5 + 3 ))
	i=$((i + 1))
done
echo "  [$ZKDOG_ID] done with $item"

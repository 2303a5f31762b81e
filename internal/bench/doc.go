// Package bench holds the pieces of zkdog's benchmark driver
// (internal/bench/zkbench) that are not measurements themselves: the
// result table, summary statistics, child processes timed from start to
// reaping, /proc readings, ZooKeeper's four-letter-word counters and work
// items.
//
// Benchmarks here print figures and never assert timings: they run on
// shared, noisy machines, where a goal missed once says little. A goal is
// printed next to each figure for the reader to judge.
package bench

// Package supervise owns the life of the command that `zkdog run` wraps,
// and watches it for signs of progress. It knows nothing of ZooKeeper:
// whoever kicks the watchdog only needs to hear "progress happened".
//
// # The child
//
// Start runs the command in a process group of its own and returns a
// Child, the single owner of its life: one goroutine waits for it and
// closes Done, after which Exit says how it ended (Exit.Status gives the
// shell's $?, 128+N for signal N). Start errors map to the shell's exit
// codes with ExitCodeFor: 127 for ErrNotFound, 126 for ErrNotExecutable.
//
// Signal and Stop act on the whole process group, so `sh -c` pipelines and
// background jobs are reached too. Stop sends SIGTERM, waits KillTimeout,
// sends SIGKILL, and once the child has exited SIGKILLs what is left of
// its group; StopWithin does the same with a shorter grace period. On
// Linux a stop also reaches the descendants that left the group (setsid,
// a daemon's double fork): the first Start makes zkdog a child subreaper,
// so that they are re-parented to zkdog rather than to init, and stay
// findable in /proc by their parent links; zkdog also reaps them when
// they exit, without ever reaping a process os/exec waits for (see
// reaper_linux.go). A child that exits by itself is different: the
// processes it leaves behind are left alone (a shell does the same), and
// Exit.Orphans says there were some, so the caller can log it or Stop to
// sweep them; a batch task whose leftovers keep running keeps holding
// its allocation.
//
// While the child runs, signals that reach zkdog are relayed to its group
// (DefaultSignals); SIGTERM and SIGINT also start the grace period, as
// Stop does. zkdog therefore never exits before its child.
//
// Output is either inherited (the child writes to zkdog's descriptors
// itself) or, when Config.Output is set, copied through pipes unchanged
// and counted, so that progress can be seen in it. Done waits for the
// copy to finish, but no longer than DrainTimeout after the child exited:
// a background job that inherited the pipe would otherwise hold zkdog
// forever. With Config.StderrTail, stderr always passes through a pipe,
// and a Tail keeps its last bytes (bounded, whatever the command writes)
// for the caller to report a failure with.
//
// Lookup checks a command the way Start would find it, without running
// anything, so that a caller can refuse a misspelt command before it
// commits to anything.
//
// # Progress
//
// A Monitor samples the child's process tree (with, on Linux, the
// orphans zkdog adopted from it) every Interval (one second by default)
// and reports the kinds of Activity it saw: cpu, io, output,
// file, kick, alive. See Monitor.Run for what each means. On Linux it
// reads /proc itself, for an eighth of the CPU time and a few hundredths
// of a percent of the garbage that going through gopsutil costs;
// elsewhere it uses gopsutil. A sample of a small idle tree takes a
// fraction of a millisecond; see BenchmarkSample.
//
// The package is for Unix systems; it is tested on Linux.
package supervise

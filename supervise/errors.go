package supervise

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
)

// Sentinel errors. Test for them with errors.Is; the errors returned wrap
// them together with the underlying cause.
var (
	// ErrNotFound: the command could not be found (exit code 127 by the
	// shell's convention).
	ErrNotFound = errors.New("command not found")
	// ErrNotExecutable: the command was found but could not be executed:
	// no permission, not a regular file, an exec format error, a missing
	// interpreter or dynamic loader (exit code 126 by the shell's
	// convention).
	ErrNotExecutable = errors.New("command not executable")
	// ErrExited: the child has already exited and been reaped, so its
	// process group can no longer be signalled safely.
	ErrExited = errors.New("the command has exited")
)

// Exit codes for a command that could not be run, as the shell and the
// coreutils prefix commands (env, nice, timeout) use them.
const (
	ExitCannotRun     = 125 // the wrapper itself failed
	ExitNotExecutable = 126
	ExitNotFound      = 127
)

// ExitCodeFor maps an error from Start to the exit status zkdog should
// exit with so that it is as transparent as a shell: 0 for nil, 127 for
// ErrNotFound, 126 for ErrNotExecutable and 125 for anything else (the
// wrapper failed for reasons of its own, e.g. a bad working directory or
// fork running out of resources).
func ExitCodeFor(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrNotFound):
		return ExitNotFound
	case errors.Is(err, ErrNotExecutable):
		return ExitNotExecutable
	default:
		return ExitCannotRun
	}
}

// lookupError classifies an exec.LookPath failure. LookPath reports a
// name absent from $PATH as exec.ErrNotFound and an explicit path that
// does not exist as fs.ErrNotExist; both are "not found". A name that
// resolves only through a relative $PATH entry (exec.ErrDot) is refused
// by Go for safety, which to the user looks like "not found" too.
// Everything else (no x bit, a directory) means the file is there but
// cannot be run.
func lookupError(name string, err error) error {
	cause := err
	var ee *exec.Error
	if errors.As(err, &ee) {
		cause = ee.Err
	}
	// The name is said once, by the caller's message.
	var pe *fs.PathError
	if errors.As(cause, &pe) {
		cause = pe.Err
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, exec.ErrDot) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%s: %w: %w", name, ErrNotFound, cause)
	}
	return fmt.Errorf("%s: %w: %w", name, ErrNotExecutable, cause)
}

// startError classifies a failure of exec.Cmd.Start after LookPath
// succeeded. Errors of execve(2) about the file mean 126; ENOENT at this
// point means the interpreter named by a #! line or the ELF loader is
// missing (bash says "bad interpreter" and exits 126), unless the file
// itself vanished since LookPath. Failures of fork itself (EAGAIN,
// ENOMEM) are the wrapper's problem: 125.
func startError(name, resolved string, err error) error {
	var pe *fs.PathError
	var errno syscall.Errno
	if !errors.As(err, &pe) || !errors.As(err, &errno) {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	switch errno {
	case syscall.ENOENT:
		if _, serr := os.Stat(resolved); errors.Is(serr, fs.ErrNotExist) {
			return fmt.Errorf("%s: %w: %w", name, ErrNotFound, errno)
		}
		return fmt.Errorf("%s: %w: %w (missing interpreter or loader?)", name, ErrNotExecutable, errno)
	case syscall.EACCES, syscall.EPERM, syscall.ENOEXEC, syscall.EISDIR,
		syscall.ENOTDIR, syscall.ELOOP, syscall.ENAMETOOLONG,
		syscall.ETXTBSY, syscall.E2BIG:
		return fmt.Errorf("%s: %w: %w", name, ErrNotExecutable, errno)
	}
	return fmt.Errorf("starting %s: %w", name, err)
}

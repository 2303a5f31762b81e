//go:build linux

package supervise

import (
	"bytes"
	"errors"
	"strconv"
	"syscall"
	"unsafe"
)

func defaultSource() procSource { return newProcfs() }

// procfs reads /proc itself. gopsutil's Times, for comparison, reads
// /proc/PID/stat, then the boot time (from /proc/stat, or inside a
// container from /proc/uptime, so its start times jitter by a second),
// then calls getpriority, and allocates some twenty strings on the way;
// this reads the one file into a reused buffer. See BenchmarkSample.
type procfs struct {
	buf  []byte // file contents
	path []byte // NUL-terminated path, reused
}

func newProcfs() *procfs {
	return &procfs{buf: make([]byte, 4096), path: make([]byte, 0, 64)}
}

func (p *procfs) pids(dst []int) ([]int, error) {
	fd, err := syscall.Open("/proc", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return dst, err
	}
	defer syscall.Close(fd)
	buf := p.buf
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return dst, err
		}
		if n <= 0 {
			return dst, nil
		}
		dst = appendDirentPids(dst, buf[:n])
	}
}

// appendDirentPids parses linux_dirent64 records (ino u64, off i64,
// reclen u16, type u8, name) and appends the all-digit names.
func appendDirentPids(dst []int, b []byte) []int {
	for len(b) >= 19 {
		reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
		if reclen < 19 || reclen > len(b) {
			break
		}
		name := b[19:reclen]
		if i := bytes.IndexByte(name, 0); i >= 0 {
			name = name[:i]
		}
		if pid, ok := atoi(name); ok {
			dst = append(dst, pid)
		}
		b = b[reclen:]
	}
	return dst
}

func atoi(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// readProc reads /proc/<pid>/<name> into p.buf without allocating.
func (p *procfs) readProc(pid int, name string) ([]byte, error) {
	path := append(p.path[:0], "/proc/"...)
	path = strconv.AppendInt(path, int64(pid), 10)
	path = append(path, '/')
	path = append(path, name...)
	path = append(path, 0)
	p.path = path
	var fd int
	dirfd := atFDCWD
	for {
		r, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(dirfd),
			uintptr(unsafe.Pointer(&path[0])), syscall.O_RDONLY|syscall.O_CLOEXEC, 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return nil, errno
		}
		fd = int(r)
		break
	}
	defer syscall.Close(fd)
	n := 0
	for n < len(p.buf) {
		m, err := syscall.Read(fd, p.buf[n:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return p.buf[:n], nil
}

const atFDCWD = -0x64 // AT_FDCWD

var errMalformed = errors.New("supervise: malformed /proc stat")

// stat parses /proc/PID/stat (proc(5)): the fields after the command name,
// which is in parentheses and may itself contain spaces and parentheses.
func (p *procfs) stat(pid int) (procStat, error) {
	b, err := p.readProc(pid, "stat")
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 > len(b) {
		return procStat{}, errMalformed
	}
	b = b[i+2:]
	// Field numbers as in proc(5); field 3 (state) is first here.
	var st procStat
	var utime, stime, cutime, cstime uint64
	for field := 3; field <= 22 && len(b) > 0; field++ {
		j := bytes.IndexByte(b, ' ')
		if j < 0 {
			j = len(b)
		}
		tok := b[:j]
		switch field {
		case 3:
			st.zombie = len(tok) > 0 && (tok[0] == 'Z' || tok[0] == 'X')
		case 4:
			st.ppid, _ = atoi(tok)
		case 5:
			st.pgid, _ = atoi(tok)
		case 6:
			st.sid, _ = atoi(tok)
		case 14:
			utime = atou(tok)
		case 15:
			stime = atou(tok)
		case 16:
			cutime = atou(tok)
		case 17:
			cstime = atou(tok)
		case 22:
			st.start = atou(tok)
			st.cpu = utime + stime + cutime + cstime
			return st, nil
		}
		if j < len(b) {
			j++
		}
		b = b[j:]
	}
	return procStat{}, errMalformed
}

func atou(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0 // cutime and cstime are signed in the kernel, never negative in practice
		}
		n = n*10 + uint64(c-'0')
	}
	return n
}

// ioBytes sums rchar, wchar, read_bytes and write_bytes of /proc/PID/io.
// Each only grows, so the sum grows exactly when one of them does. The
// file needs ptrace access: a set-uid member gives EACCES and is left out.
func (p *procfs) ioBytes(pid int) (uint64, error) {
	b, err := p.readProc(pid, "io")
	if err != nil {
		return 0, err
	}
	return parseIO(b), nil
}

func parseIO(b []byte) uint64 {
	var sum uint64
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		k := bytes.IndexByte(line, ':')
		if k < 0 {
			continue
		}
		switch string(line[:k]) {
		case "rchar", "wchar", "read_bytes", "write_bytes":
			sum += atou(bytes.TrimSpace(line[k+1:]))
		}
	}
	return sum
}

// startSlack: start times are clock ticks since boot, exact.
func (p *procfs) startSlack() uint64 { return 0 }

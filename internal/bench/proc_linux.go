//go:build linux

package bench

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errUnsupported is nil on Linux: the bench reads every process's CPU time
// and memory from /proc.
var errUnsupported error

// atClkTck is the auxiliary vector's entry for the clock tick rate: what
// sysconf(_SC_CLK_TCK) returns, the unit of utime and stime in /proc.
const atClkTck = 17

// clockTicks is the kernel's USER_HZ, read from this process's auxiliary
// vector (AT_CLKTCK) as the C library's sysconf(_SC_CLK_TCK) does; 100, the
// value of every common Linux architecture, when it cannot be read.
func clockTicks() int64 {
	raw, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	size := strconv.IntSize / 8 // the words of the auxiliary vector are the platform's
	for i := 0; i+2*size <= len(raw); i += 2 * size {
		var key, val uint64
		if size == 8 {
			key, val = binary.NativeEndian.Uint64(raw[i:]), binary.NativeEndian.Uint64(raw[i+size:])
		} else {
			key, val = uint64(binary.NativeEndian.Uint32(raw[i:])), uint64(binary.NativeEndian.Uint32(raw[i+size:]))
		}
		if key == atClkTck && val > 0 {
			return int64(val)
		}
		if key == 0 {
			break
		}
	}
	return 100
}

// processCPU is the CPU time (user + system) pid has used so far, all its
// threads together, from fields 14 and 15 of /proc/<pid>/stat, in clock
// ticks of 1/hz s.
func processCPU(pid int, hz int64) (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatCPU(raw, hz)
}

// parseStatCPU reads utime and stime from the text of /proc/<pid>/stat.
// The command name (field 2) is in parentheses and may hold spaces or
// parentheses itself: the fields are counted from the last ')'.
func parseStatCPU(raw []byte, hz int64) (time.Duration, error) {
	end := bytes.LastIndexByte(raw, ')')
	if end < 0 || hz <= 0 {
		return 0, fmt.Errorf("bench: /proc stat: no command name")
	}
	fields := strings.Fields(string(raw[end+1:])) // fields[0] is field 3, the state
	if len(fields) < 13 {
		return 0, fmt.Errorf("bench: /proc stat: %d fields", len(fields)+2)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: /proc stat: utime %q stime %q", fields[11], fields[12])
	}
	return time.Duration((utime + stime) * int64(time.Second) / hz), nil
}

// processMemMiB reads a memory line of /proc/<pid>/status: "VmRSS:" is the
// resident memory now, "VmHWM:" its peak.
func processMemMiB(pid int, field string) float64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// selfCPU is this process's CPU time (user + system, every thread) from
// getrusage, to the microsecond.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childAttr puts a child in a process group of its own (a Ctrl-C on the
// terminal reaches the bench alone, which stops the children in order) and
// has the kernel kill it if the bench dies without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// profileSignal tells a child started with a profile (`wxflow bench
// profile`) that the measured run begins.
var profileSignal os.Signal = syscall.SIGUSR1

// StopSignals are the signals that end a bench run early: every signal
// whose default is to end the process and that a process can catch (not
// SIGPROF, which Go's profiler uses). The run then stops its children and
// `wxflow bench` removes its temporary folder.
func StopSignals() []os.Signal {
	return []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGPIPE, syscall.SIGALRM,
		syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGVTALRM}
}

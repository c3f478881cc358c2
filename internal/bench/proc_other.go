//go:build !linux

package bench

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// errUnsupported: the bench reads every process's CPU time and memory from
// Linux's /proc, which other systems do not have.
var errUnsupported = errors.New("wxflow bench runs on Linux only: it reads each process's CPU time from /proc")

func clockTicks() int64 { return 100 }

func processCPU(int, int64) (time.Duration, error) { return 0, errUnsupported }

func processMemMiB(int, string) float64 { return 0 }

func selfCPU() time.Duration { return 0 }

func childAttr() *syscall.SysProcAttr { return nil }

// profileSignal: none; a profile starts with the process.
var profileSignal os.Signal

// StopSignals are the signals that end a bench run early.
func StopSignals() []os.Signal { return []os.Signal{os.Interrupt} }

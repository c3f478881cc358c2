package bench

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
)

// Profile runs run (a wxflow subcommand, in `wxflow bench profile`) and
// profiles it: its CPU from the moment the bench signals that the measured
// run begins (or from the start where there is no such signal) until run
// returns, then its heap. It returns run's exit status.
func Profile(cpuPath, heapPath string, run func() int) int {
	var mu sync.Mutex
	var f *os.File
	over := false
	begin := func() {
		mu.Lock()
		defer mu.Unlock()
		if f != nil || over {
			return
		}
		out, err := os.Create(cpuPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wxflow bench profile:", err)
			return
		}
		if err := pprof.StartCPUProfile(out); err != nil {
			out.Close()
			fmt.Fprintln(os.Stderr, "wxflow bench profile:", err)
			return
		}
		f = out
	}
	stop := make(chan struct{})
	if profileSignal == nil {
		begin()
	} else {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, profileSignal)
		defer signal.Stop(sig)
		go func() {
			select {
			case <-sig:
				begin()
			case <-stop:
			}
		}()
	}
	code := run()
	close(stop)
	mu.Lock()
	over = true
	if f != nil {
		pprof.StopCPUProfile()
		f.Close()
	}
	mu.Unlock()
	if heapPath != "" {
		runtime.GC()
		if hf, err := os.Create(heapPath); err == nil {
			_ = pprof.WriteHeapProfile(hf)
			hf.Close()
		}
	}
	return code
}

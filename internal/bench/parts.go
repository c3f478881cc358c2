package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process kinds, the keys of the report's CPU and memory by process.
const (
	KindNATS    = "nats"
	KindEngine  = "engine"
	KindAPI     = "api"
	KindWorkers = "workers"
)

// part is one process of the deployment under test, a subcommand of the
// wxflow binary started by the bench.
type part struct {
	kind, name string
	cmd        *exec.Cmd
	logPath    string
	metrics    string // its /metrics URL, if it serves one
	done       chan struct{}
	err        error // how it ended, once done is closed
}

// parts starts and stops the processes of one run.
type parts struct {
	exe        string   // the wxflow binary
	env        []string // added to the children's environment
	logDir     string
	profileDir string // when set, each child writes its CPU and heap profiles here
	hz         int64  // clock ticks per second of /proc's CPU times

	mu       sync.Mutex
	list     []*part
	stopping bool
	onExit   func(error) // a part ended while the run needed it
}

// start runs `wxflow ARGS…` as a part of kind. Its output goes to
// <logDir>/<name>.log.
func (ps *parts) start(kind, name string, args ...string) (*part, error) {
	p := &part{kind: kind, name: name, done: make(chan struct{}),
		logPath: filepath.Join(ps.logDir, strings.ReplaceAll(name, " ", "-")+".log")}
	if ps.profileDir != "" {
		base := filepath.Join(ps.profileDir, strings.ReplaceAll(name, " ", "-"))
		args = append([]string{"bench", "profile", "--cpu", base + ".cpu.prof", "--heap", base + ".heap.prof", "--"}, args...)
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	p.cmd = exec.Command(ps.exe, args...)
	p.cmd.Env = childEnv(ps.env)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	p.cmd.SysProcAttr = childAttr()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
		ps.mu.Lock()
		stopping, onExit := ps.stopping, ps.onExit
		ps.mu.Unlock()
		if !stopping && onExit != nil {
			onExit(fmt.Errorf("%s ended during the run (%v): %s", name, p.err, p.logTail()))
		}
	}()
	return p, nil
}

// childEnv is the bench's environment without WXFLOW_* settings (each part
// is given its own on the command line; a WXFLOW_NATS_CREDS or
// WXFLOW_DB_URL of the shell must not leak into the run), plus extra.
func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WXFLOW_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// cpu is the part's CPU time so far; 0 once it has ended.
func (p *part) cpu(hz int64) time.Duration {
	select {
	case <-p.done:
		return 0
	default:
	}
	d, _ := processCPU(p.cmd.Process.Pid, hz)
	return d
}

// alive says whether the part still runs.
func (p *part) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// logTail is the end of the part's output, for an error message.
func (p *part) logTail() string {
	raw, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	if len(raw) > 1500 {
		raw = raw[len(raw)-1500:]
	}
	return strings.TrimSpace(string(raw))
}

// signal sends sig to the part, if it still runs.
func (p *part) signal(sig os.Signal) {
	if p.alive() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// stop asks the part to end (SIGTERM: it drains and exits) and kills it
// after grace. An exit caused by the bench's SIGTERM is no error.
func (p *part) stop(grace time.Duration) error {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s: killed", p.name, grace)
	}
	var ee *exec.ExitError
	if p.err != nil && errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
		return fmt.Errorf("%s: %w: %s", p.name, p.err, p.logTail())
	}
	return p.err
}

// stopKinds stops the parts of the given kinds (in that order), and says
// that their ending is expected.
func (ps *parts) stopKinds(kinds ...string) error {
	ps.mu.Lock()
	ps.stopping = true
	list := append([]*part(nil), ps.list...)
	ps.mu.Unlock()
	var errs []error
	for _, k := range kinds {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, p := range list {
			if p.kind != k {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.stop(15 * time.Second); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	return errors.Join(errs...)
}

// stopAll stops every part still running: the deployment first, NATS last.
func (ps *parts) stopAll() error {
	return ps.stopKinds(KindAPI, KindWorkers, KindEngine, KindNATS)
}

// byKind lists the running parts of kind.
func (ps *parts) byKind(kind string) []*part {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []*part
	for _, p := range ps.list {
		if p.kind == kind {
			out = append(out, p)
		}
	}
	return out
}

// cpuByKind is the CPU time so far of each kind's parts together.
func (ps *parts) cpuByKind() map[string]time.Duration {
	ps.mu.Lock()
	list := append([]*part(nil), ps.list...)
	ps.mu.Unlock()
	out := map[string]time.Duration{}
	for _, p := range list {
		out[p.kind] += p.cpu(ps.hz)
	}
	return out
}

// memByKind is a memory line of /proc/<pid>/status ("VmRSS:", "VmHWM:") of
// each kind's parts together, in MiB.
func (ps *parts) memByKind(field string) map[string]float64 {
	ps.mu.Lock()
	list := append([]*part(nil), ps.list...)
	ps.mu.Unlock()
	out := map[string]float64{}
	for _, p := range list {
		if p.alive() {
			out[p.kind] += processMemMiB(p.cmd.Process.Pid, field)
		}
	}
	return out
}

// freePort is a port of 127.0.0.1 nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls ready every 50 ms until it succeeds, the part ends or
// 90 s pass (a loaded machine starts a process slowly).
func waitReady(ctx context.Context, p *part, what string, ready func(context.Context) error) error {
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		if !p.alive() {
			return fmt.Errorf("%s ended before it was ready (%v): %s", p.name, p.err, p.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after 90 s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// dialable says whether addr accepts TCP connections.
func dialable(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
}

// httpOK says whether url answers 200.
func httpOK(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
		}
		return nil
	}
}

// scrapeCounter sums every sample of a counter in the Prometheus text
// exposition at url; 0 when it cannot be read.
func scrapeCounter(ctx context.Context, client *http.Client, url, name string) float64 {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return sumCounter(resp.Body, name)
}

// sumCounter sums the samples of counter name in a text exposition.
func sumCounter(r io.Reader, name string) float64 {
	total := 0.0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			total += v
		}
	}
	return total
}

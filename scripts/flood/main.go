// Command flood attacks a running wxflow API with many requests, for
// scripts/reliability.sh's attack scenario, and prints what came of them as
// key=value lines:
//
//	flood conns -addr HOST:PORT -pid API_PID   # slow bodies and unfinished headers, and a genuine request
//	flood orders -url URL -key KEY             # creates as fast as they go, as one shop
//
// conns opens -slow connections that send a notification's body a byte a
// second and -headers connections that send -header-bytes of headers and
// never end them, from -sources loopback addresses (127.0.1.1, 127.0.1.2,
// …), then asks GET /healthz from -genuine-from while they hang on. A
// connection the server closes, or answers with an error, within -hold is
// refused; one still open then, or answered 2xx, is accepted. It reports
// the API process's memory peak (VmHWM) before and after.
//
// orders sends creates for -for with -concurrency clients and counts the
// answers; past_limit is how many more were created than -rate and -burst
// allow. With -check-key, one create of another shop is sent halfway
// through, to show the flood does not starve it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: flood conns|orders [flags]")
	}
	switch os.Args[1] {
	case "conns":
		conns(os.Args[2:])
	case "orders":
		orders(os.Args[2:])
	default:
		fail("unknown attack " + os.Args[1])
	}
}

// outcome is what became of one hostile connection.
type outcome int

const (
	closedAtOnce outcome = iota // closed or refused within a second
	closedLater                 // closed or answered with an error by a timeout
	answeredOK                  // answered 2xx: accepted
	held                        // still open at the end of the hold: accepted
)

func conns(args []string) {
	fs := flag.NewFlagSet("conns", flag.ExitOnError)
	addr := fs.String("addr", "", "the public listener, HOST:PORT")
	pid := fs.Int("pid", 0, "the API process, for its memory")
	slow := fs.Int("slow", 300, "connections sending a body a byte a second")
	headers := fs.Int("headers", 300, "connections sending unfinished headers")
	headerBytes := fs.Int("header-bytes", 60<<10, "how much of the headers each sends")
	sources := fs.Int("sources", 10, "loopback addresses the attack comes from (127.0.1.1 …)")
	genuineFrom := fs.String("genuine-from", "127.0.0.2", "where the genuine request comes from")
	hold := fs.Duration("hold", 25*time.Second, "how long a connection may stay open before it counts as held")
	_ = fs.Parse(args)
	if *addr == "" {
		fail("conns: -addr is required")
	}
	hwmBefore := memKB(*pid, "VmHWM")
	start := time.Now()
	deadline := start.Add(*hold)
	results := make([]outcome, *slow+*headers)
	var done, opened sync.WaitGroup
	opened.Add(len(results))
	for i := range results {
		src := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(i%*sources+1))}
		done.Go(func() { results[i] = hostile(*addr, src, i < *slow, *headerBytes, deadline, opened.Done) })
	}
	opened.Wait() // every hostile connection sent its first bytes or was refused (each dial is bounded)
	status, took := genuine(*addr, *genuineFrom)
	done.Wait()
	counts := map[outcome]int{}
	for _, o := range results {
		counts[o]++
	}
	fmt.Printf("attempts=%d\nrefused=%d\naccepted=%d\nclosed_at_once=%d\nclosed_by_timeout=%d\n",
		len(results), counts[closedAtOnce]+counts[closedLater], counts[answeredOK]+counts[held],
		counts[closedAtOnce], counts[closedLater])
	fmt.Printf("answered_ok=%d\nheld=%d\ngenuine_status=%d\ngenuine_ms=%d\nhwm_before_kb=%d\nhwm_kb=%d\nseconds=%.1f\n",
		counts[answeredOK], counts[held], status, took.Milliseconds(), hwmBefore, memKB(*pid, "VmHWM"), time.Since(start).Seconds())
}

// hostile runs one hostile connection from src until deadline and says
// what became of it; opened is called once its first bytes are sent (or
// it was refused).
func hostile(addr string, src *net.TCPAddr, slowBody bool, headerBytes int, deadline time.Time, opened func()) outcome {
	start := time.Now()
	d := net.Dialer{LocalAddr: src, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		opened()
		return closedSince(start)
	}
	defer conn.Close()
	_ = conn.SetDeadline(deadline)
	var first []byte
	if slowBody {
		first = []byte("POST /wechat/notify/default/v3/pay HTTP/1.1\r\nHost: wxflow\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{")
	} else {
		first = append([]byte("GET /healthz HTTP/1.1\r\nHost: wxflow\r\nX-Pad: "), bytes.Repeat([]byte("a"), headerBytes)...)
	}
	_, err = conn.Write(first)
	opened()
	if err != nil {
		return closedSince(start)
	}
	// The server's answer (or its closing) is read while the body trickles.
	answer := make(chan outcome, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		switch {
		case err == nil && resp.StatusCode < 300:
			answer <- answeredOK
		case err != nil && isTimeout(err):
			answer <- held
		default:
			answer <- closedSince(start)
		}
	}()
	if !slowBody {
		return <-answer
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case o := <-answer:
			return o
		case <-tick.C:
			if _, err := conn.Write([]byte(" ")); err != nil && !isTimeout(err) {
				return <-answer
			}
		}
	}
}

// closedSince is a refusal of a connection opened at start: at once or by a timeout.
func closedSince(start time.Time) outcome {
	if time.Since(start) < time.Second {
		return closedAtOnce
	}
	return closedLater
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && errors.As(err, &ne) && ne.Timeout()
}

// genuine asks GET /healthz from src and returns the status (0: no answer)
// and how long it took.
func genuine(addr, src string) (int, time.Duration) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	start := time.Now()
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, time.Since(start)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, time.Since(start)
}

func orders(args []string) {
	fs := flag.NewFlagSet("orders", flag.ExitOnError)
	url := fs.String("url", "", "the internal listener, http://HOST:PORT")
	key := fs.String("key", "", "the flooding shop's API key")
	checkKey := fs.String("check-key", "", "another shop's key: one create halfway through")
	pid := fs.Int("pid", 0, "the API process, for its memory")
	dur := fs.Duration("for", 3*time.Second, "how long to flood")
	concurrency := fs.Int("concurrency", 16, "clients at once")
	rate := fs.Float64("rate", 0, "the shop's rate (WXFLOW_SHOP_RATE), for past_limit")
	burst := fs.Float64("burst", 0, "its burst (twice the rate)")
	_ = fs.Parse(args)
	if *url == "" || *key == "" {
		fail("orders: -url and -key are required")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *concurrency}}
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	start := time.Now()
	for range *concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				status, _ := create(client, *url, *key)
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		})
	}
	checkStatus, checkTook := 0, time.Duration(0)
	if *checkKey != "" {
		<-time.After(*dur / 2)
		checkStatus, checkTook = create(client, *url, *checkKey)
	}
	wg.Wait()
	elapsed := time.Since(start)
	attempts, created := 0, statuses[http.StatusCreated]
	var other []string
	for s, n := range statuses {
		attempts += n
		if s != http.StatusCreated && s != http.StatusTooManyRequests {
			other = append(other, fmt.Sprintf("%d×%d", n, s))
		}
	}
	sort.Strings(other)
	allowed := int(math.Ceil(*burst+*rate*elapsed.Seconds())) + 1
	fmt.Printf("attempts=%d\ncreated=%d\nlimited=%d\nother=%s\nseconds=%.1f\nallowed=%d\npast_limit=%d\n",
		attempts, created, statuses[http.StatusTooManyRequests], strings.Join(other, ","), elapsed.Seconds(), allowed, max(0, created-allowed))
	fmt.Printf("check_status=%d\ncheck_ms=%d\nhwm_kb=%d\n", checkStatus, checkTook.Milliseconds(), memKB(*pid, "VmHWM"))
}

// create sends one create and returns its status (0: no answer).
func create(c *http.Client, url, key string) (int, time.Duration) {
	body := `{"amount_fen":1,"description":"flood","openid":"oFlood","pay_api":"v3"}`
	req, err := http.NewRequest(http.MethodPost, url+"/v1/orders", strings.NewReader(body))
	if err != nil {
		fail(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, time.Since(start)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, time.Since(start)
}

// memKB reads a field of /proc/<pid>/status in KiB; -1 when it cannot.
func memKB(pid int, field string) int {
	if pid == 0 {
		return -1
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return -1
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "flood:", msg)
	os.Exit(2)
}

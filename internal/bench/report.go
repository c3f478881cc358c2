package bench

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/wxflow/wxflow/engine"
)

// Print writes the report for people.
func Print(w io.Writer, r *Report) {
	paced := ""
	if r.TargetRate > 0 {
		paced = fmt.Sprintf(", paced at %.0f/s", r.TargetRate)
	}
	fmt.Fprintf(w, "%d orders (%d refunded), concurrency %d%s, pay API %s, %d engine(s), workers %s, %d preloaded: %.1f orders/s (%.2f s)\n",
		r.Orders, r.Refunded, r.Concurrency, paced, r.PayAPI, r.Engines, r.Workers, r.Preloaded, r.OrdersPerS, r.Seconds)
	var spread []string
	for _, m := range r.Merchants {
		spread = append(spread, fmt.Sprintf("%s %d", m, r.OrdersByMerchant[m]))
	}
	fmt.Fprintf(w, "orders by merchant (%d, round-robin): %s\n", len(r.Merchants), strings.Join(spread, ", "))
	k := r.CPUMSPerOrderByKind
	fmt.Fprintf(w, "CPU per order (ms): wxflow %.2f = engine %.2f + api %.2f + workers %.2f; NATS server %.2f; simulator and driver %.2f (not wxflow's)\n",
		r.CPUMSPerOrder, k[KindEngine], k[KindAPI], k[KindWorkers], k[KindNATS], r.DriverCPUMSPerOrder)
	i := r.IdleCPUMSPerS
	fmt.Fprintf(w, "idle (ms of CPU per s, no order in flight, %.0f s): engine %.1f, api %.1f, workers %.1f, NATS server %.1f\n",
		r.IdleSeconds, i[KindEngine], i[KindAPI], i[KindWorkers], i[KindNATS])
	c := r.Ceiling
	fmt.Fprintf(w, "ceiling (ms per order): %.2f = protocol %.2f + SQL %.2f + NATS %.2f; NATS server %.2f\n",
		c.CPUMSPerOrder, c.ProtocolCPUMSPerOrder, c.SQLCPUMSPerOrder, c.NATSCPUMSPerOrder, c.NATSServerCPUMSPerOrder)
	fmt.Fprintf(w, "  %d RSA signatures, %d RSA verifications, %d AES-GCM, %d MD5 signatures, %d SQL transactions, %d JetStream round trips\n",
		c.Counts.RSASigns, c.Counts.RSAVerifies, c.Counts.AESGCMOpens, c.Counts.MD5Signs, c.Transactions, c.RoundTrips)
	fmt.Fprintf(w, "ratio = ceiling ÷ wxflow CPU per order = %.2f", r.Ratio)
	if r.RatioWithNATS > 0 {
		fmt.Fprintf(w, " (%.2f with the NATS server on both sides)", r.RatioWithNATS)
	}
	fmt.Fprintln(w)
	keys := slices.Sorted(maps.Keys(r.Latency))
	fmt.Fprintln(w, "latency (ms)            p50     p90     p99     max")
	for _, k := range keys {
		p := r.Latency[k]
		fmt.Fprintf(w, "  %-20s %7.1f %7.1f %7.1f %7.1f\n", strings.Replace(k, "_", "→", 1), p.P50, p.P90, p.P99, p.Max)
	}
	var rss []string
	for _, k := range slices.Sorted(maps.Keys(r.PeakRSSMiB)) {
		rss = append(rss, fmt.Sprintf("%s %.0f", k, r.PeakRSSMiB[k]))
	}
	fmt.Fprintf(w, "WeChat calls per order %.2f, peak RSS (MiB) %s, DB %.1f MiB, event stream %.1f MiB\n",
		r.WeChatCallsPerOrder, strings.Join(rss, ", "), float64(r.DBBytes)/(1<<20), float64(r.StreamBytes)/(1<<20))
	if n := len(r.Intervals); n > 1 {
		a, b := r.Intervals[0], r.Intervals[n-1]
		fmt.Fprintf(w, "every 10 s (%d samples), first → last: CPU per order %.2f → %.2f ms, created→notified p99 %.1f → %.1f ms\n",
			n, a.CPUMSPerOrder, b.CPUMSPerOrder, a.CreatedNotified.P99, b.CreatedNotified.P99)
	}
	fmt.Fprintf(w, "RSA signer %s; load average %.2f → %.2f (CPU times in 1/%d s)\n", r.Signer, r.LoadAvg[0], r.LoadAvg[1], r.ClockTicks)
	for _, warn := range r.Warnings {
		fmt.Fprintln(w, "warning:", warn)
	}
}

// databaseBytes is the database's size on disk: the SQLite file with its
// write-ahead log, or PostgreSQL's pg_database_size; 0 when unknown.
func databaseBytes(ctx context.Context, store *engine.Store, dbURL string) int64 {
	if store.Dialect() == engine.Postgres { // engine.Open chose PostgreSQL for this URL
		n, _ := store.DatabaseSize(ctx)
		return n
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(dbURL, "sqlite:"), "?")
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

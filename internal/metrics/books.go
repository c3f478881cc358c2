package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxflow/wxflow/engine"
)

// booksMetrics count the daily books' runs and repairs (workers/books), by
// status, repair and bucket: never by order.
type booksMetrics struct {
	runs    *prometheus.CounterVec
	repairs *prometheus.CounterVec
	lines   *prometheus.GaugeVec
}

func newBooksMetrics(r *prometheus.Registry) *booksMetrics {
	b := &booksMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxflow_books_runs_total",
			Help: "Runs of a day's books, by outcome: balanced, discrepancies, failed."}, []string{"status"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wxflow_books_repairs_total",
			Help: "Repairs the books asked for: query (the order is replayed and its worker asks WeChat) or flag (an alert for a person)."}, []string{"repair"}),
		lines: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "wxflow_books_last_run_lines",
			Help: "Trades and refunds of the last day's books run by this process, by bucket (matched, missing_in_wxflow, missing_at_wechat, amount_differs, state_differs, later)."}, []string{"kind"}),
	}
	r.MustRegister(b.runs, b.repairs, b.lines)
	return b
}

// BooksRun counts a run of a day's books (books.Observer).
func (m *Metrics) BooksRun(r engine.BooksResult) {
	m.books.runs.WithLabelValues(r.Status).Inc()
	for _, k := range engine.BooksKinds {
		m.books.lines.WithLabelValues(string(k)).Set(float64(r.Counts[k]))
	}
}

// BooksRepair counts a repair the books published (books.Observer).
func (m *Metrics) BooksRepair(repair string) { m.books.repairs.WithLabelValues(repair).Inc() }

// BooksFailed counts a run that ended without a result (books.Observer).
func (m *Metrics) BooksFailed() { m.books.runs.WithLabelValues("failed").Inc() }

// ObserveBooks adds the gauge read from the store at scrape time: the
// discrepancies of the stored books of the last seven days, by bucket.
func (m *Metrics) ObserveBooks(store *engine.Store) {
	m.Registry.MustRegister(&booksCollector{store: store})
}

var discrepanciesDesc = prometheus.NewDesc("wxflow_books_discrepancies",
	"Discrepancies in the stored books of the last seven days, by bucket: missing_in_wxflow, missing_at_wechat, amount_differs, state_differs.",
	[]string{"kind"}, nil)

type booksCollector struct{ store *engine.Store }

func (c *booksCollector) Describe(ch chan<- *prometheus.Desc) { ch <- discrepanciesDesc }

func (c *booksCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	n, err := c.store.BooksDiscrepancies(ctx, engine.DayOf(time.Now()).AddDays(-7))
	if err != nil {
		return
	}
	for _, k := range engine.BooksKinds {
		if k.Discrepancy() {
			ch <- prometheus.MustNewConstMetric(discrepanciesDesc, prometheus.GaugeValue, float64(n[k]), string(k))
		}
	}
}

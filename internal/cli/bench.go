package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/internal/bench"
)

// benchCommand measures the whole lifecycle beside the raw ceiling (docs/PERFORMANCE.md).
func benchCommand() *cobra.Command {
	var orders, concurrency, refundEvery, preload int
	var payAPI string
	var asJSON bool
	var dataDir, cpuProfile, memProfile, natsURL, dbURL string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure orders/s and transition latency of the whole lifecycle against the simulator, beside the raw ceiling of NATS and SQLite",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if payAPI != "v2" && payAPI != "v3" && payAPI != "mixed" {
				return usageError{fmt.Errorf("--pay-api %q: want v2, v3 or mixed", payAPI)}
			}
			if orders < 1 || concurrency < 1 || preload < 0 || refundEvery < 0 {
				return usageError{fmt.Errorf("--orders and --concurrency must be positive, --preload and --refund-every not negative")}
			}
			if dataDir == "" {
				dir, err := os.MkdirTemp("", "wxflow-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				dataDir = dir
			}
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := bench.Run(cmd.Context(), bench.Options{Orders: orders, Concurrency: concurrency, PayAPI: payAPI,
				RefundEvery: refundEvery, DataDir: dataDir, Progress: !asJSON && isTerminal(os.Stderr), Preload: preload,
				MemProfile: memProfile, NATSURL: natsURL, DBURL: dbURL})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(rep)
			}
			bench.Print(out, rep)
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&orders, "orders", 1000, "orders to run through the lifecycle")
	f.IntVar(&concurrency, "concurrency", 32, "orders in flight at once")
	f.StringVar(&payAPI, "pay-api", "mixed", "v2, v3 or mixed")
	f.IntVar(&refundEvery, "refund-every", 5, "refund every Nth order in full after payment (0: none)")
	f.IntVar(&preload, "preload", 0, "first fill the orders table with this many paid orders (and one event each)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (fields in docs/PERFORMANCE.md)")
	f.StringVar(&dataDir, "data", "", "data folder (default: a temporary one, removed afterwards)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the whole run here")
	f.StringVar(&memProfile, "memprofile", "", "write a heap profile taken at the end of the run here")
	f.StringVar(&natsURL, "nats", "", "run against this NATS server (or comma-separated cluster) instead of an embedded one; the ceiling is measured on it too")
	f.StringVar(&dbURL, "db", "", "run against this database (sqlite:PATH or postgres://…) instead of SQLite in the data folder; the ceiling is measured on it too")
	return cmd
}

// isTerminal says whether f is a terminal (a progress bar may be drawn on it).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/internal/bench"
)

// benchCommand measures wxflow's CPU per order, its throughput and latency
// over the whole lifecycle, beside the ceiling of the unavoidable work
// (docs/PERFORMANCE.md).
func benchCommand() *cobra.Command {
	var o bench.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use: "bench",
		Short: "Measure wxflow's CPU per order, orders/s and transition latency over the whole lifecycle, " +
			"its processes apart from the simulator and the driver, beside the ceiling of the unavoidable work (Linux)",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.PayAPI != "v2" && o.PayAPI != "v3" && o.PayAPI != "mixed" {
				return usageError{fmt.Errorf("--pay-api %q: want v2, v3 or mixed", o.PayAPI)}
			}
			if o.Workers != "all" && o.Workers != "each" {
				return usageError{fmt.Errorf("--workers %q: want all or each", o.Workers)}
			}
			if o.Orders < 1 || o.Concurrency < 1 || o.Preload < 0 || o.RefundEvery < 0 || o.Rate < 0 || o.Warmup < 0 || o.Engines < 1 {
				return usageError{errors.New("--orders, --concurrency and --engines must be positive; --preload, --refund-every, --rate and --warmup not negative")}
			}
			if n := len(bench.OrderMerchants()); o.Merchants < 1 || o.Merchants > n {
				return usageError{fmt.Errorf("--merchants %d: want 1 to %d (%s)", o.Merchants, n, strings.Join(bench.OrderMerchants(), ", "))}
			}
			if o.Engines > 1 && !strings.HasPrefix(o.DBURL, "postgres://") && !strings.HasPrefix(o.DBURL, "postgresql://") {
				return usageError{bench.ErrEnginesNeedPostgres}
			}
			// Any signal that would end the bench stops its processes first,
			// and the temporary folder goes with them.
			ctx, stop := signal.NotifyContext(cmd.Context(), bench.StopSignals()...)
			defer stop()
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Executable = exe
			if o.DataDir == "" {
				dir, err := os.MkdirTemp("", "wxflow-bench-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				o.DataDir = dir
			}
			if o.ProfileDir != "" {
				if err := os.MkdirAll(o.ProfileDir, 0o755); err != nil {
					return err
				}
			}
			o.Progress = !asJSON && isTerminal(os.Stderr)
			rep, err := bench.Run(ctx, o)
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
	f.IntVar(&o.Orders, "orders", 1000, "orders to run through the lifecycle")
	f.IntVar(&o.Concurrency, "concurrency", 32, "orders in flight at most")
	f.Float64Var(&o.Rate, "rate", 0, "start this many orders a second (at most --concurrency in flight); 0: as fast as they finish")
	f.StringVar(&o.PayAPI, "pay-api", "mixed", "v2, v3 or mixed")
	f.IntVar(&o.RefundEvery, "refund-every", 5, "refund every Nth order in full after payment (0: none)")
	f.IntVar(&o.Preload, "preload", 0, "first fill the orders table with this many paid orders (and one event each)")
	f.IntVar(&o.Warmup, "warmup", 0, "orders run before the measure begins (0: the concurrency, at least 10)")
	f.IntVar(&o.Engines, "engines", 1, "engine processes, sharing the command stream (more than one needs --db postgres://…)")
	f.IntVar(&o.Merchants, "merchants", len(bench.OrderMerchants()), "spread the orders round-robin over this many merchants: the first of "+
		strings.Join(bench.OrderMerchants(), ", ")+" (the simulator serves all of them and their provider)")
	f.StringVar(&o.Workers, "workers", "all", "all: one worker process for every kind; each: one process per kind, as the Procfile")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (fields in docs/PERFORMANCE.md)")
	f.StringVar(&o.DataDir, "data", "", "the run's folder, fresh (default: a temporary one, removed afterwards)")
	f.StringVar(&o.ProfileDir, "profile", "", "write each process's CPU profile of the measured run and its heap at the end here (go tool pprof)")
	f.StringVar(&o.NATSURL, "nats", "", "run against this NATS server (or comma-separated cluster) instead of starting one; its CPU is then not measured")
	f.StringVar(&o.DBURL, "db", "", "run against this database (sqlite:PATH or postgres://…) instead of SQLite in the data folder")
	cmd.AddCommand(benchCeilingCommand(), benchProfileCommand())
	return cmd
}

// benchCeilingCommand is the ceiling's own process: it reads a
// bench.CeilingSpec (JSON) on stdin, does that work and prints a
// bench.CeilingResult (JSON). `wxflow bench` runs it.
func benchCeilingCommand() *cobra.Command {
	return &cobra.Command{
		Use:    "ceiling",
		Short:  "The ceiling of `wxflow bench`, in a process of its own (spec on stdin, result on stdout)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var spec bench.CeilingSpec
			if err := json.NewDecoder(cmd.InOrStdin()).Decode(&spec); err != nil {
				return usageError{fmt.Errorf("ceiling spec on stdin: %w", err)}
			}
			res, err := bench.RunCeiling(cmd.Context(), spec)
			if err != nil {
				return err
			}
			return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
		},
	}
}

// benchProfileCommand runs another wxflow subcommand with profiles:
// `wxflow bench profile --cpu F --heap F -- engine …`, as `wxflow bench
// --profile` starts its processes.
func benchProfileCommand() *cobra.Command {
	var cpu, heap string
	cmd := &cobra.Command{
		Use:    "profile -- SUBCOMMAND [ARGS…]",
		Short:  "Run a wxflow subcommand with a CPU profile from SIGUSR1 to its end, and a heap profile at its end",
		Hidden: true,
		Args:   cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cpu == "" {
				return usageError{errors.New("--cpu is required")}
			}
			code := bench.Profile(cpu, heap, func() int {
				return Execute(cmd.Context(), args, cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
			if code != ExitOK {
				return fmt.Errorf("%s: exit status %d", args[0], code)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cpu, "cpu", "", "CPU profile to write")
	cmd.Flags().StringVar(&heap, "heap", "", "heap profile to write at the end")
	return cmd
}

// isTerminal says whether f is a terminal (a progress bar may be drawn on it).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

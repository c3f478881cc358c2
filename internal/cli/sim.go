package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// simCommand runs the WeChat simulator alone (docs/SIMULATOR.md).
func simCommand() *cobra.Command {
	var s stack.Settings
	var addr, keys, backupAddr string
	var cfg sim.Config
	var chaos float64
	var memoryOnly bool
	var merchants string
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the WeChat simulator (HTTPS; keys and its CA in --keys)",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gLog)
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8443", "listen address (env WXFLOW_SIM_ADDR)")
	f.StringVar(&keys, "keys", "data/sim", "key folder: created on first start, reused afterwards (env WXFLOW_MERCHANT_DIR)")
	flags.env["addr"], flags.env["keys"] = "WXFLOW_SIM_ADDR", "WXFLOW_MERCHANT_DIR"
	f.StringVar(&merchants, "merchants", "", "dev: the five dev merchants, one folder each in --keys (two direct, a provider, two sub-merchants); "+
		"one: a single merchant's files at the top of --keys (default: one for a folder that already holds them, dev otherwise) (env WXFLOW_SIM_MERCHANTS)")
	flags.env["merchants"] = "WXFLOW_SIM_MERCHANTS"
	f.StringVar(&backupAddr, "backup-addr", "", "also serve WeChat Pay's backup host (a second site, same ledger) here, e.g. 127.0.0.1:8444 (env WXFLOW_SIM_BACKUP_ADDR)")
	flags.env["backup-addr"] = "WXFLOW_SIM_BACKUP_ADDR"
	f.Var(&cfg.Outage, "outage", "take a site's pay calls down from the start: SITE:MODE[:DURATION], e.g. primary:502:30s (sites primary, backup; modes refuse, 502, hang)")
	f.BoolVar(&cfg.Strict, "strict", false, "check openids and https notify URLs as WeChat does")
	f.Float64Var(&cfg.TimeScale, "time-scale", 1, "scale of WeChat's delays (retries, token life, refund settlement)")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", 7200*time.Second, "access_token and jsapi_ticket lifetime")
	f.BoolVar(&cfg.BillsAtOnce, "bills-now", false, "serve a day's bills at once, today's as it stands (WeChat: after 10:00 Beijing time the next day)")
	f.BoolVar(&memoryOnly, "memory-only", false, "keep no ledger: forget every order and refund at exit (default: kept in the --keys folder, "+sim.LedgerFile+")")
	cfg.Faults.RegisterFlags(f)
	f.Float64Var(&chaos, "chaos", 0, "fail this share of API calls in every way, duplicate every notification, reorder and drop this share (replaces the other fault flags)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		specs, err := simMerchants(merchants, keys)
		if err != nil {
			return err
		}
		cfg.KeysDir, cfg.Logger, cfg.Merchants = keys, s.Logger(), specs
		if !memoryOnly {
			cfg.LedgerDir = keys
		}
		if chaos > 0 {
			cfg.Faults = sim.Chaos(chaos, cfg.Faults.Seed)
		}
		simulator, err := stack.NewSim(cfg, addr, false)
		if err != nil {
			return fmt.Errorf("%w (--addr)", err)
		}
		m := simulator.Keys().Merchant
		fmt.Fprintf(cmd.OutOrStdout(), "WeChat simulator on %s\n  appid %s, mchid %s, keys in %s\n  trust %s\n",
			simulator.URL, m.AppID, m.MchID, keys, filepath.Join(keys, sim.CAFile))
		printSimMerchants(cmd.OutOrStdout(), simulator.Keys().Registry)
		g, ctx := errgroup.WithContext(cmd.Context())
		if backupAddr != "" {
			if err := simulator.ListenBackup(backupAddr, false); err != nil {
				return fmt.Errorf("%w (--backup-addr)", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "  WeChat Pay's backup host on %s (WXFLOW_WECHAT_BACKUP_URL)\n", simulator.BackupURL)
			g.Go(func() error { return simulator.ServeSite(ctx, simulator.Backup, sim.SiteBackup) })
		}
		g.Go(func() error { return simulator.Run(ctx) })
		g.Go(func() error { return simulator.Serve(ctx, simulator.Listener) })
		return g.Wait()
	}
	return cmd
}

// errSimLayout reports a --merchants the keys folder's layout cannot serve:
// the simulator never turns one layout into the other, since wxflow's
// processes read the same folder.
var errSimLayout = errors.New("sim: --merchants does not fit the keys folder")

// simMerchants chooses the merchants `wxflow sim` serves from --merchants
// (dev, one, or empty: by the folder) and the keys folder: nil is the
// single-merchant layout (one merchant's files at the top of dir), else
// the dev merchants, one folder each. A folder that already holds one
// merchant's files stays single, so that a deployment made before keeps
// working; a new or empty folder, or one in the folder layout, gets dev.
func simMerchants(mode, dir string) ([]sim.MerchantSpec, error) {
	_, err := os.Stat(filepath.Join(dir, wechat.MerchantFile))
	single := err == nil
	switch mode {
	case "", "dev":
		if single && mode == "dev" {
			return nil, usageError{fmt.Errorf("%w: %s holds one merchant's files (%s at its top); "+
				"use --merchants one, or a new --keys folder for the dev merchants", errSimLayout, dir, wechat.MerchantFile)}
		}
		if single {
			return nil, nil
		}
		return sim.DevMerchants(), nil
	case "one":
		if !single && folderLayout(dir) {
			return nil, usageError{fmt.Errorf("%w: %s holds one folder per merchant; use --merchants dev, or a new --keys folder for one merchant",
				errSimLayout, dir)}
		}
		return nil, nil
	}
	return nil, usageError{fmt.Errorf("--merchants %q: want dev or one", mode)}
}

// folderLayout reports whether dir holds a merchant's folder (<name>/merchant.json).
func folderLayout(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(dir, e.Name(), wechat.MerchantFile)); e.IsDir() && err == nil {
			return true
		}
	}
	return false
}

// printSimMerchants names every merchant the simulator serves, so that a
// person sees at start which names shops may act for.
func printSimMerchants(w io.Writer, reg *wechat.Registry) {
	var names []string
	for _, m := range reg.Merchants() {
		switch {
		case m.Partner():
			names = append(names, fmt.Sprintf("%s (sub-merchant of %s)", m.Name, m.Provider))
		default:
			names = append(names, m.Name+" (direct)")
		}
	}
	for _, p := range reg.Providers() {
		names = append(names, p.Name+" (provider, takes no orders)")
	}
	fmt.Fprintf(w, "  merchants: %s\n", strings.Join(names, ", "))
}

package cli

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/internal/demo"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// demoCommand drives orders through a running deployment (the Procfile's)
// and its simulator, like `wxflow dev --demo N` does in one process.
func demoCommand() *cobra.Command {
	var s stack.Settings
	var cfg demo.Config
	var ca, merchantDir string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Drive N orders through a running wxflow and its WeChat simulator; exit 0 only if all end right",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gHTTP)
	f := cmd.Flags()
	f.IntVar(&cfg.Orders, "orders", 20, "orders to drive")
	f.IntVar(&cfg.Concurrency, "concurrency", 16, "concurrent orders")
	f.StringVar(&cfg.APIURL, "api", "", "wxflow's shop API (default http://<--http>)")
	f.StringVar(&cfg.SimURL, "sim", "https://127.0.0.1:8443", "the WeChat simulator (env WXFLOW_WECHAT_URL)")
	f.StringVar(&ca, "sim-ca", "", "the simulator's CA certificate (env WXFLOW_WECHAT_CA; default <data>/sim/"+sim.CAFile+")")
	flags.env["sim"], flags.env["sim-ca"] = "WXFLOW_WECHAT_URL", "WXFLOW_WECHAT_CA"
	f.DurationVar(&cfg.Timeout, "timeout", 60*time.Second, "how long one order may take")
	f.BoolVar(&cfg.Forge, "forge", false, "post forged payment notifications for every order before it is paid (all must be refused)")
	f.StringVar(&cfg.Merchant, "merchant", "default", "the merchant name in wxflow's notify URLs (env WXFLOW_MERCHANT)")
	flags.env["merchant"] = "WXFLOW_MERCHANT"
	f.StringVar(&merchantDir, "merchant-dir", "", "the merchants' folder (env WXFLOW_MERCHANT_DIR; default <data>/sim): the demo spreads its orders over every merchant and app there, and checks that nothing crosses")
	flags.env["merchant-dir"] = "WXFLOW_MERCHANT_DIR"
	f.StringVar(&cfg.ShopKey, "shop-key", "", "the shop API key to drive orders with (env WXFLOW_SHOP_KEY; default the one in <data>/shops/demo.key)")
	flags.env["shop-key"] = "WXFLOW_SHOP_KEY"
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		cfg.APIURL = cmp.Or(cfg.APIURL, "http://"+s.HTTPAddr)
		cfg.NotifyURL = s.PublicURL
		if cfg.ShopKey == "" {
			key, err := stack.ReadKeyFile(stack.ShopKeyFile(s.DataDir, stack.DemoShop))
			if err != nil {
				return usageError{fmt.Errorf("%w (--shop-key, or `wxflow shop add demo --merchant default --key-file %s`)", err, stack.ShopKeyFile(s.DataDir, stack.DemoShop))}
			}
			cfg.ShopKey = key
		}
		if ca == "" {
			ca = filepath.Join(s.DataDir, "sim", sim.CAFile)
		}
		pemBytes, err := os.ReadFile(ca)
		if err != nil {
			return usageError{fmt.Errorf("simulator CA (--sim-ca): %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return usageError{fmt.Errorf("simulator CA %s: no certificate found", ca)}
		}
		cfg.SimClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}}
		// Every merchant and app of the deployment, when its folder is
		// here; else the one merchant --merchant names.
		reg, err := wechat.LoadRegistry(cmp.Or(merchantDir, filepath.Join(s.DataDir, "sim")), cfg.Merchant)
		if err == nil && len(reg.Names()) > 0 {
			cfg.Registry = reg
		}
		start := time.Now()
		results := demo.Run(cmd.Context(), cfg)
		out := cmd.OutOrStdout()
		ok := demo.PrintSummary(out, results, time.Since(start))
		l, err := demo.AuditLedger(cmd.Context(), cfg, results)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, l)
		crossed := false
		if cfg.Registry != nil {
			c, err := demo.AuditCrossings(cmd.Context(), cfg, results)
			fmt.Fprintln(out, c)
			for _, f := range c.Found {
				fmt.Fprintln(out, "  CROSSING", f)
			}
			crossed = err != nil || !c.OK()
		}
		if !ok || !l.OK() || crossed {
			return errors.New("demo: some orders did not end right, the books disagree, or something crossed merchants")
		}
		return nil
	}
	return cmd
}

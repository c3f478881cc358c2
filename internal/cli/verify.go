package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/internal/verify"
	"github.com/wxflow/wxflow/workers/wechat"
	"github.com/wxflow/wxflow/workers/wechat/sim"
)

// verifyCommand scans the store, the event stream and log files for broken
// money rules, and exits non-zero on any.
func verifyCommand() *cobra.Command {
	var s stack.Settings
	var logs []string
	var unsentAfter time.Duration
	var noStream, asJSON, noBooks bool
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the invariants: verified payments, refunds within payments, allowed transitions, every event once in the stream, every closed day's books balanced, every payment and refund at WeChat under its own merchant (--sim), no secret in the logs",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gLog, gDB, gNATS, gMerchant, gBooks)
	f := cmd.Flags()
	f.StringSliceVar(&logs, "logs", nil, "log files to scan for the merchant's secrets")
	f.DurationVar(&unsentAfter, "unsent-after", time.Minute, "an outbox row unsent for longer is a breach")
	var refundGap time.Duration
	f.DurationVar(&refundGap, "refund-gap", time.Minute, "two refunds of one order sent to WeChat closer than this are a breach (a deployment on scaled time, like dev's, gives its own)")
	f.BoolVar(&noStream, "no-stream", false, "skip the event stream (when NATS is not running)")
	f.BoolVar(&asJSON, "json", false, "print the breaches as JSON")
	f.BoolVar(&noBooks, "no-books", false, "skip the books (every closed day's books balanced, on WeChat's final bill)")
	var simURL, simCA string
	f.StringVar(&simURL, "sim", "", "a dev deployment's WeChat simulator (https://HOST:PORT): check every paid or refunded order against its records, under its merchant, sub-merchant and app")
	f.StringVar(&simCA, "sim-ca", "", "the simulator's CA certificate (default <merchant dir>/"+sim.CAFile+")")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		ctx := cmd.Context()
		store, err := stack.OpenStore(ctx, &s)
		if err != nil {
			return err
		}
		defer store.Close()
		breaches, err := store.Verify(ctx, unsentAfter)
		if err != nil {
			return err
		}
		paced, err := store.VerifyRefundPacing(ctx, refundGap)
		if err != nil {
			return err
		}
		breaches = append(breaches, paced...)
		if !noStream {
			nc, js, err := stack.ConnectNATS(ctx, &s, natsauth.Monitor, false, s.Logger())
			if err != nil {
				return fmt.Errorf("%w (use --no-stream to skip the stream)", err)
			}
			defer nc.Close()
			more, err := verify.Stream(ctx, js, store)
			if err != nil {
				return fmt.Errorf("verify: reading the event stream: %w", err)
			}
			breaches = append(breaches, more...)
		}
		if !noBooks {
			// A day is closed once its books are due: the worker's wait
			// for the bill (--books-ready-after) and an hour to run them.
			ready := cmp.Or(s.BooksReadyAfter, 10*time.Hour+30*time.Minute) + time.Hour
			// Every direct merchant keeps books (a sub-merchant's are in its
			// provider's bill, not read yet); the default one when the
			// merchant folder cannot be read here.
			merchants := []string{s.MerchantName}
			if reg, err := wechat.LoadRegistry(s.MerchantDir, s.MerchantName); err == nil {
				merchants = merchants[:0]
				for _, m := range reg.Merchants() {
					if !m.Partner() {
						merchants = append(merchants, m.Name)
					}
				}
			}
			for _, m := range merchants {
				more, err := verify.Books(ctx, store, verify.BooksConfig{Merchant: m, Now: time.Now(), ReadyAfter: ready})
				if err != nil {
					return err
				}
				breaches = append(breaches, more...)
			}
		}
		if simURL != "" {
			more, err := verifyMerchants(ctx, &s, store, simURL, simCA)
			if err != nil {
				return err
			}
			breaches = append(breaches, more...)
		}
		if len(logs) > 0 {
			more, err := verify.Logs(s.MerchantName, s.MerchantDir, logs)
			if err != nil {
				return err
			}
			breaches = append(breaches, more...)
		}
		out := cmd.OutOrStdout()
		if asJSON {
			if breaches == nil {
				breaches = []engine.Breach{}
			}
			_ = json.NewEncoder(out).Encode(breaches)
		} else {
			for _, b := range breaches {
				fmt.Fprintf(out, "BREACH %s %s: %s\n", b.Rule, b.OrderID, b.Detail)
			}
		}
		if len(breaches) > 0 {
			return fmt.Errorf("verify: %d breaches", len(breaches))
		}
		if !asJSON {
			fmt.Fprintln(out, "verify: no breach")
		}
		return nil
	}
	return cmd
}

// verifyMerchants checks each paid or refunded order against the
// simulator's records (verify.Merchants), with the merchants of the
// deployment's merchant folder.
func verifyMerchants(ctx context.Context, s *stack.Settings, store *engine.Store, simURL, simCA string) ([]engine.Breach, error) {
	reg, err := wechat.LoadRegistry(s.MerchantDir, s.MerchantName)
	if err != nil {
		return nil, fmt.Errorf("verify: the merchants: %w", err)
	}
	pemBytes, err := os.ReadFile(cmp.Or(simCA, filepath.Join(s.MerchantDir, sim.CAFile)))
	if err != nil {
		return nil, usageError{fmt.Errorf("simulator CA (--sim-ca): %w", err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, usageError{errors.New("simulator CA (--sim-ca): no certificate found")}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	recs, err := verify.SimRecords(ctx, client, simURL)
	if err != nil {
		return nil, err
	}
	return verify.Merchants(ctx, store, reg, recs)
}

package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
)

// shopCommand groups the shop tools: who may call the shop API, for which
// merchants, with which keys. They work on the store directly (a data
// folder or WXFLOW_DB_URL), even when nothing runs, and hash keys under the
// server secret, which they make in the data folder when it is missing.
func shopCommand() *cobra.Command {
	shop := &cobra.Command{Use: "shop", Short: "Add shops, list them, rotate and revoke their API keys"}
	shop.AddCommand(shopAddCommand(), shopListCommand(), shopRotateCommand(), shopRevokeCommand(), shopWebhookCommand())
	return shop
}

// shopEnv is what every shop subcommand opens: the store and the server secret.
type shopEnv struct {
	s     stack.Settings
	flags *flagSet
}

func (e *shopEnv) register(cmd *cobra.Command) {
	e.flags = settingsFlags(cmd, &e.s, gData, gLog, gDB, gSecret)
}

// open loads the settings and opens the store and the server secret.
func (e *shopEnv) open(ctx context.Context) (*engine.Store, []byte, error) {
	if err := e.flags.load(&e.s); err != nil {
		return nil, nil, err
	}
	store, err := stack.OpenStore(ctx, &e.s)
	if err != nil {
		return nil, nil, err
	}
	secret, err := e.s.ServerSecret()
	if err != nil {
		store.Close()
		return nil, nil, err
	}
	return store, secret, nil
}

// shopName checks a shop name argument.
func shopName(name string) error {
	if !engine.ValidShopName(name) {
		return usageError{fmt.Errorf("shop name %q: want 1-32 of [a-z0-9_-]", name)}
	}
	return nil
}

func shopAddCommand() *cobra.Command {
	var e shopEnv
	var merchants []string
	var ifMissing bool
	var keyFile string
	cmd := &cobra.Command{
		Use:   "add NAME --merchant M[,M…]",
		Short: "Add a shop acting for the merchants given, and issue its first API key (shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if err := shopName(name); err != nil {
				return err
			}
			for _, m := range merchants {
				if !engine.ValidShopName(m) {
					return usageError{fmt.Errorf("--merchant %q: want 1-32 of [a-z0-9_-]", m)}
				}
			}
			if len(merchants) == 0 {
				return usageError{errors.New("--merchant is required: the merchants the shop may act for")}
			}
			store, secret, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			out := cmd.OutOrStdout()
			// The shop's NATS user, for a shop that publishes on NATS itself;
			// a running `wxflow nats` takes it within seconds.
			seed, err := natsauth.AddShop(natsauth.Dir(e.s.DataDir), name, merchants)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "shop %s's NATS seed file (for publishing on NATS itself): %s\n", name, seed)
			if ifMissing {
				_, made, err := stack.EnsureShop(cmd.Context(), store, secret, name, merchants, keyFile)
				switch {
				case err != nil:
					return err
				case made && keyFile != "":
					fmt.Fprintf(out, "shop %s is ready; its key is in %s\n", name, keyFile)
				case made:
					fmt.Fprintf(out, "shop %s added without a key: `wxflow shop rotate %s` issues one\n", name, name)
				default:
					fmt.Fprintf(out, "shop %s exists already\n", name)
				}
				return nil
			}
			if err := store.AddShop(cmd.Context(), engine.Shop{Name: name, Merchants: merchants, CreatedAt: time.Now()}); err != nil {
				if errors.Is(err, engine.ErrShopExists) {
					return usageError{fmt.Errorf("shop %s exists already (rotate issues it another key)", name)}
				}
				return err
			}
			return issueKey(cmd, store, secret, name, keyFile)
		},
	}
	e.register(cmd)
	cmd.Flags().StringSliceVar(&merchants, "merchant", nil, "the merchants the shop may act for, comma-separated (their folder names in WXFLOW_MERCHANT_DIR)")
	cmd.Flags().BoolVar(&ifMissing, "if-missing", false, "do nothing when the shop exists (and --key-file holds a live key of it); for scripts run at every start")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "write the key to this file (0600) instead of printing it")
	return cmd
}

// issueKey issues a new key of the shop and shows it once: printed, or
// written to keyFile.
func issueKey(cmd *cobra.Command, store *engine.Store, secret []byte, name, keyFile string) error {
	key, rec, err := stack.IssueShopKey(cmd.Context(), store, secret, name)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if keyFile != "" {
		if err := stack.WriteKeyFile(keyFile, key); err != nil {
			return err
		}
		fmt.Fprintf(out, "shop %s: key %s written to %s\n", name, rec.ID, keyFile)
		return nil
	}
	fmt.Fprintf(out, "shop %s: key %s\n%s\nIt is shown this once; wxflow keeps only its hash. Send it as Authorization: Bearer <key>.\n", name, rec.ID, key)
	return nil
}

func shopListCommand() *cobra.Command {
	var e shopEnv
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the shops, their merchants and their keys' ids (no secret)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, _, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			shops, err := store.Shops(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "SHOP\tMERCHANTS\tLIVE KEYS\tREVOKED")
			for _, sh := range shops {
				keys, err := store.ShopKeys(cmd.Context(), sh.Name)
				if err != nil {
					return err
				}
				var live, revoked []string
				for _, k := range keys {
					if k.Live() {
						live = append(live, k.ID+" ("+k.CreatedAt.Format("2006-01-02")+")")
					} else {
						revoked = append(revoked, k.ID)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", sh.Name, strings.Join(sh.Merchants, ","), orNone(live), orNone(revoked))
			}
			return tw.Flush()
		},
	}
	e.register(cmd)
	return cmd
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, " ")
}

func shopRotateCommand() *cobra.Command {
	var e shopEnv
	var keyFile string
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Issue the shop a new API key; its other keys stay live until revoked",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := shopName(args[0]); err != nil {
				return err
			}
			store, secret, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			if _, err := store.Shop(cmd.Context(), args[0]); errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("no shop %s", args[0])
			} else if err != nil {
				return err
			}
			return issueKey(cmd, store, secret, args[0], keyFile)
		},
	}
	e.register(cmd)
	cmd.Flags().StringVar(&keyFile, "key-file", "", "write the key to this file (0600) instead of printing it")
	return cmd
}

func shopRevokeCommand() *cobra.Command {
	var e shopEnv
	var keyID string
	cmd := &cobra.Command{
		Use:   "revoke NAME [--key KEYID]",
		Short: "Revoke one API key of the shop, or all of them; running APIs refuse it within 30 s",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := shopName(args[0]); err != nil {
				return err
			}
			store, _, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			n, err := store.RevokeShopKeys(cmd.Context(), args[0], keyID, time.Now())
			if err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("shop %s has no live key %s", args[0], cmp.Or(keyID, "at all"))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "shop %s: %d key(s) revoked; running APIs refuse them within 30 s (their cache of verified keys)\n", args[0], n)
			return nil
		},
	}
	e.register(cmd)
	cmd.Flags().StringVar(&keyID, "key", "", "the id of the key to revoke (wxflow shop list); all of the shop's keys when not given")
	return cmd
}

package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/webhook"
)

// shopWebhookCommand groups a shop's webhooks: the HTTP endpoints that
// receive every event of the shop's merchants, signed. Like the other shop
// tools they work on the store directly; the signing secret is sealed under
// the server secret, which the webhook worker needs too.
func shopWebhookCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "webhook", Short: "Add, list and remove a shop's webhook endpoints; see and resend their deliveries"}
	cmd.AddCommand(webhookAddCommand(), webhookListCommand(), webhookRemoveCommand(), webhookDeliveriesCommand(), webhookResendCommand())
	return cmd
}

// webhookEnv is what every webhook subcommand opens; add reads the
// private-address setting too.
func webhookEnv(cmd *cobra.Command, withPolicy bool) *shopEnv {
	e := &shopEnv{}
	groups := []group{gData, gLog, gDB, gSecret}
	if withPolicy {
		groups = append(groups, gWebhook)
	}
	e.flags = settingsFlags(cmd, &e.s, groups...)
	return e
}

func webhookAddCommand() *cobra.Command {
	var e *shopEnv
	cmd := &cobra.Command{
		Use:   "add SHOP URL",
		Short: "Send every event of the shop's merchants to URL, signed; prints the endpoint's signing secret once",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := shopName(args[0]); err != nil {
				return err
			}
			if err := e.flags.load(&e.s); err != nil {
				return err
			}
			target, err := webhook.CheckURL(args[1], e.s.WebhookAllowPrivate)
			switch {
			case errors.Is(err, webhook.ErrPrivateTarget) && e.s.WebhookAllowPrivate:
				return usageError{fmt.Errorf("%w: link-local, multicast and reserved addresses are never allowed", err)}
			case errors.Is(err, webhook.ErrPrivateTarget):
				return usageError{fmt.Errorf("%w: endpoints must be on public addresses (--webhook-allow-private allows loopback and private ones)", err)}
			case err != nil:
				return usageError{err}
			}
			store, secret, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			sigSecret, ep, err := engine.NewWebhookEndpoint(secret, args[0], target, time.Now())
			if err != nil {
				return err
			}
			switch err := store.AddWebhookEndpoint(cmd.Context(), ep); {
			case errors.Is(err, engine.ErrNotFound):
				return fmt.Errorf("no shop %s", args[0])
			case err != nil:
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "shop %s: webhook %s → %s\nsigning secret: %s\n"+
				"It is shown this once; wxflow keeps it sealed under the server secret. Check every delivery's Wxflow-Signature with it (docs/API.md, Webhooks).\n"+
				"Events of the shop's merchants from now on are sent there by the webhook worker (`wxflow worker webhook`, in `worker all` and `dev`).\n",
				args[0], ep.ID, ep.URL, sigSecret)
			return nil
		},
	}
	e = webhookEnv(cmd, true)
	return cmd
}

func webhookListCommand() *cobra.Command {
	var e *shopEnv
	cmd := &cobra.Command{
		Use:   "list SHOP",
		Short: "List the shop's webhook endpoints and how their deliveries stand (no secret)",
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
			if _, err := store.Shop(cmd.Context(), args[0]); errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("no shop %s", args[0])
			} else if err != nil {
				return err
			}
			list, err := store.WebhookEndpoints(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tURL\tCREATED\tPENDING\tDELIVERED\tFAILED")
			for _, ep := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", ep.ID, ep.URL, ep.CreatedAt.Format(time.RFC3339), ep.Pending, ep.Delivered, ep.Failed)
			}
			return tw.Flush()
		},
	}
	e = webhookEnv(cmd, false)
	return cmd
}

func webhookRemoveCommand() *cobra.Command {
	var e *shopEnv
	cmd := &cobra.Command{
		Use:   "remove SHOP ID",
		Short: "Remove a webhook endpoint; its pending deliveries are cancelled",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := shopName(args[0]); err != nil {
				return err
			}
			store, _, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			n, err := store.RemoveWebhookEndpoint(cmd.Context(), args[0], args[1], time.Now())
			if errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("shop %s has no webhook %s", args[0], args[1])
			} else if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "shop %s: webhook %s removed, %d pending deliveries cancelled\n", args[0], args[1], n)
			return nil
		},
	}
	e = webhookEnv(cmd, false)
	return cmd
}

func webhookDeliveriesCommand() *cobra.Command {
	var e *shopEnv
	var state string
	var limit int
	cmd := &cobra.Command{
		Use:   "deliveries SHOP ID [--state pending|delivered|failed|cancelled] [--limit N]",
		Short: "List a webhook endpoint's deliveries, newest first: state, attempts, the last answer",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := shopName(args[0]); err != nil {
				return err
			}
			if st := engine.WebhookState(state); state != "" && !st.Valid() {
				return usageError{fmt.Errorf("--state %q: want pending, delivered, failed or cancelled", state)}
			}
			if limit < 1 || limit > 10000 {
				return usageError{fmt.Errorf("--limit %d: want 1 to 10000", limit)}
			}
			store, _, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			if _, err := store.WebhookEndpoint(cmd.Context(), args[0], args[1]); errors.Is(err, engine.ErrNotFound) {
				return fmt.Errorf("shop %s has no webhook %s", args[0], args[1])
			} else if err != nil {
				return err
			}
			list, err := store.WebhookDeliveries(cmd.Context(), engine.WebhookDeliveryFilter{EndpointID: args[1], State: engine.WebhookState(state), Limit: limit})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "EVENT\tTYPE\tORDER\tSEQ\tSTATE\tATTEMPTS\tSTATUS\tWHEN\tLAST ERROR")
			for _, d := range list {
				when := "next " + d.NextAt.Format(time.RFC3339)
				if d.DoneAt != nil {
					when = d.DoneAt.Format(time.RFC3339)
				}
				status := "-"
				if d.LastStatus != 0 {
					status = fmt.Sprint(d.LastStatus)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n", d.EventID, d.EventType, d.OrderID, d.Seq, d.State, d.Attempts, status, when, orDash(d.LastError))
			}
			return tw.Flush()
		},
	}
	e = webhookEnv(cmd, false)
	cmd.Flags().StringVar(&state, "state", "", "only deliveries in this state: pending, delivered, failed (given up), cancelled")
	cmd.Flags().IntVar(&limit, "limit", 100, "the most deliveries listed")
	return cmd
}

func webhookResendCommand() *cobra.Command {
	var e *shopEnv
	var event, since string
	cmd := &cobra.Command{
		Use:   "resend SHOP ID --event EVT | --since TIME",
		Short: "Send one event, or every event of the shop's merchants since TIME, again (delivered ones too; receivers dedupe by event id)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := shopName(args[0]); err != nil {
				return err
			}
			var r engine.WebhookResend
			switch {
			case (event == "") == (since == ""):
				return usageError{errors.New("want --event EVT or --since TIME (one of them)")}
			case event != "":
				r.EventID = event
			default:
				t, err := parseSince(since, time.Now())
				if err != nil {
					return usageError{err}
				}
				r.Since = t
			}
			store, _, err := e.open(cmd.Context())
			if err != nil {
				return err
			}
			defer store.Close()
			n, err := store.ResendWebhooks(cmd.Context(), args[0], args[1], r, time.Now())
			switch {
			case errors.Is(err, engine.ErrNotFound):
				return fmt.Errorf("shop %s has no webhook %s", args[0], args[1])
			case err != nil:
				return err
			case n == 0 && event != "":
				return fmt.Errorf("no event %s of shop %s's merchants", event, args[0])
			}
			fmt.Fprintf(cmd.OutOrStdout(), "shop %s: webhook %s: %d deliveries queued again, each order's in order\n", args[0], args[1], n)
			return nil
		},
	}
	e = webhookEnv(cmd, false)
	cmd.Flags().StringVar(&event, "event", "", "the id of the event to send again (evt_…)")
	cmd.Flags().StringVar(&since, "since", "", "send every event written since TIME: RFC 3339 (2026-11-24T08:00:00Z) or a duration ago (90m, 24h)")
	return cmd
}

// parseSince reads --since: an RFC 3339 time, or a duration before now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(strings.TrimSpace(v)); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time (2026-11-24T08:00:00Z) or a duration ago (24h)", v)
}

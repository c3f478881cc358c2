package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers"
)

// adminCommand groups the admin tools: reading ones work on a data folder
// (or WXFLOW_DB_URL) even when nothing runs; acting ones publish commands
// that take effect as soon as the engine runs.
func adminCommand() *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Find stuck orders, show an order's timeline, replay, close, refund and resolve flags"}
	admin.AddCommand(adminStuckCommand(), adminShowCommand(), adminReplayCommand(), adminCloseCommand(), adminRefundCommand(),
		adminResolveCommand())
	return admin
}

func adminStuckCommand() *cobra.Command {
	var s stack.Settings
	var flags *flagSet
	var state string
	var olderThan time.Duration
	var asJSON bool
	var merchant string
	cmd := &cobra.Command{
		Use:   "stuck",
		Short: "List orders that stopped moving (past their state's deadline, dead-lettered or flagged)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := flags.load(&s); err != nil {
				return err
			}
			store, err := stack.OpenStore(cmd.Context(), &s)
			if err != nil {
				return err
			}
			defer store.Close()
			deadlines, err := s.Deadlines()
			if err != nil {
				return err
			}
			only, err := parseState(state)
			if err != nil {
				return err
			}
			stuck, err := store.Stuck(cmd.Context(), engine.StuckFilter{State: only, Merchant: merchant, OlderThan: olderThan, Deadlines: deadlines})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if stuck == nil {
					stuck = []engine.StuckOrder{}
				}
				return json.NewEncoder(out).Encode(stuck)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ORDER\tMERCHANT\tSTATE\tAMOUNT (fen)\tOUT_TRADE_NO\tUPDATED\tWHY")
			for _, o := range stuck {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", o.ID, o.Merchant, o.State, o.AmountFen, o.OutTradeNo, o.UpdatedAt.Format(time.RFC3339), o.Why)
			}
			tw.Flush()
			fmt.Fprintf(out, "%d stuck\n", len(stuck))
			return nil
		},
	}
	flags = settingsFlags(cmd, &s, gData, gLog, gDB, gStuck)
	cmd.Flags().StringVar(&state, "state", "", "only this state")
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "stuck when unchanged for this long, whatever the state's deadline")
	cmd.Flags().StringVar(&merchant, "merchant", "", "only this merchant's orders")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func adminShowCommand() *cobra.Command {
	var s stack.Settings
	var flags *flagSet
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show ORDER_ID",
		Short: "Show an order, its timeline (transitions and refused commands) and its refunds",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flags.load(&s); err != nil {
				return err
			}
			store, err := stack.OpenStore(cmd.Context(), &s)
			if err != nil {
				return err
			}
			defer store.Close()
			ctx, id := cmd.Context(), engine.OrderID(args[0])
			o, err := store.Order(ctx, id)
			if errors.Is(err, engine.ErrNotFound) {
				o, err = store.OrderByOutTradeNo(ctx, s.MerchantName, args[0])
			}
			if err != nil {
				return fmt.Errorf("order %s: %w", args[0], err)
			}
			h, err := store.History(ctx, o.ID)
			if err != nil {
				return err
			}
			refunds, err := store.Refunds(ctx, o.ID)
			if err != nil {
				return err
			}
			why := ""
			if stuck, err := store.Stuck(ctx, engine.StuckFilter{State: o.State}); err == nil {
				for _, st := range stuck {
					if st.ID == o.ID {
						why = st.Why
					}
				}
			}
			calls, callsErr := readCalls(cmd, &s, o.ID)
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"order": o, "history": h, "refunds": refunds, "stuck": why, "calls": calls})
			}
			printOrder(out, o, h, refunds, why)
			printCalls(out, calls, callsErr)
			return nil
		},
	}
	flags = settingsFlags(cmd, &s, gData, gLog, gDB, gNATS, gMerchant, gStuck)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printOrder(w io.Writer, o engine.Order, h []engine.HistoryEntry, refunds []engine.Refund, why string) {
	fmt.Fprintf(w, "order %s  (%s, out_trade_no %s)\n", o.ID, o.Merchant, o.OutTradeNo)
	fmt.Fprintf(w, "  state     %s", o.State)
	for _, f := range o.Flags {
		fmt.Fprintf(w, "  FLAG %s (%s)", f, engine.KindOf(f))
	}
	fmt.Fprintf(w, "\n  amount    %d fen, paid %d, refunded %d  (pay API %s, %s)\n", o.AmountFen, o.PaidFen, o.RefundedFen, o.PayAPI, o.Client)
	fmt.Fprintf(w, "  payer     %s   prepay_id %s   transaction %s\n", orDash(o.OpenID), orDash(o.PrepayID), orDash(o.TransactionID))
	fmt.Fprintf(w, "  created   %s   expires %s   updated %s\n", o.CreatedAt.Format(time.RFC3339), o.ExpiresAt.Format(time.RFC3339), o.UpdatedAt.Format(time.RFC3339))
	if o.FailCode != "" || o.FailReason != "" {
		fmt.Fprintf(w, "  failed    %s %s\n", o.FailCode, o.FailReason)
	}
	if why != "" {
		fmt.Fprintf(w, "  STUCK     %s\n", why)
	}
	fmt.Fprintln(w, "timeline")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, e := range h {
		move := fmt.Sprintf("%s → %s", orDash(string(e.From)), e.To)
		if !e.Applied {
			move = "refused: " + e.Code
		}
		fmt.Fprintf(tw, "  %s\t#%d\t%s\t%s\t%s\t%s\n", e.At.Format("15:04:05.000"), e.Seq, e.Type, move, e.Actor, e.Reason)
	}
	tw.Flush()
	for _, r := range refunds {
		fmt.Fprintf(w, "refund %s: %d fen, %s %s\n", r.OutRefundNo, r.AmountFen, r.State, r.RefundID)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// actor names who acts, for the history: admin:<who>. Unlike the admin page
// and API, which record the identity that signed in and ignore any name a
// request gives, these tools trust --who: they run on the host with the
// database and NATS themselves, where a person could write any history anyway.
func actor(who string) string {
	if who == "" {
		who = os.Getenv("USER")
	}
	if who == "" {
		who = "unknown"
	}
	return "admin:" + who
}

// adminFlags are the who/why every acting command records.
type adminFlags struct {
	who, reason string
}

func (a *adminFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.who, "who", "", "who acts (default $USER)")
	cmd.Flags().StringVar(&a.reason, "reason", "", "why: written to the order's history (required)")
}

func (a *adminFlags) check() error {
	if strings.TrimSpace(a.reason) == "" {
		return errors.New("--reason is required: it is written to the order's history")
	}
	return nil
}

func connectJS(cmd *cobra.Command, s *stack.Settings) (jetstream.JetStream, func(), error) {
	nc, js, err := stack.ConnectNATS(cmd.Context(), s, natsauth.Admin, false, s.Logger().With("component", "admin"))
	if err != nil {
		return nil, nil, err
	}
	return js, func() { _ = nc.Drain() }, nil
}

func adminReplayCommand() *cobra.Command {
	var s stack.Settings
	var flags *flagSet
	var a adminFlags
	var stuck, dryRun bool
	var state, merchant string
	cmd := &cobra.Command{
		Use:   "replay [ORDER_ID…]",
		Short: "Re-emit what each order's current state needs (safe to repeat: no second payment, refund or close)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flags.load(&s); err != nil {
				return err
			}
			if err := a.check(); err != nil {
				return err
			}
			if stuck == (len(args) > 0) {
				return errors.New("give order ids or --stuck, not both")
			}
			ids := make([]engine.OrderID, 0, len(args))
			for _, id := range args {
				ids = append(ids, engine.OrderID(id))
			}
			if stuck {
				store, err := stack.OpenStore(cmd.Context(), &s)
				if err != nil {
					return err
				}
				deadlines, err := s.Deadlines()
				if err != nil {
					return err
				}
				only, err := parseState(state)
				if err != nil {
					store.Close()
					return err
				}
				list, err := store.Stuck(cmd.Context(), engine.StuckFilter{State: only, Merchant: merchant, Deadlines: deadlines})
				store.Close()
				if err != nil {
					return err
				}
				for _, o := range list {
					ids = append(ids, o.ID)
				}
			}
			out := cmd.OutOrStdout()
			if dryRun {
				for _, id := range ids {
					fmt.Fprintln(out, "would replay", id)
				}
				fmt.Fprintf(out, "%d orders (dry run)\n", len(ids))
				return nil
			}
			js, closeJS, err := connectJS(cmd, &s)
			if err != nil {
				return err
			}
			defer closeJS()
			bar := progress(out, len(ids))
			for _, id := range ids {
				c := engine.Command{ID: engine.AdminCommandID(engine.VerbReplay), Verb: engine.VerbReplay, Origin: engine.OriginAdmin, OrderID: id, Actor: actor(a.who), Reason: a.reason}
				if _, err := engine.Publish(cmd.Context(), js, c, nil); err != nil {
					return err
				}
				bar()
			}
			fmt.Fprintf(out, "%d replays sent; the engine applies them as it runs\n", len(ids))
			return nil
		},
	}
	flags = settingsFlags(cmd, &s, gData, gLog, gDB, gNATS, gStuck)
	a.register(cmd)
	cmd.Flags().BoolVar(&stuck, "stuck", false, "replay every stuck order")
	cmd.Flags().StringVar(&state, "state", "", "with --stuck: only this state")
	cmd.Flags().StringVar(&merchant, "merchant", "", "with --stuck: only this merchant's orders")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be replayed")
	return cmd
}

// progress shows a bar on a terminal for long runs and returns its step function.
func progress(w io.Writer, total int) func() {
	f, ok := w.(*os.File)
	if !ok || total < 20 {
		return func() {}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return func() {}
	}
	p := mpb.New(mpb.WithOutput(f))
	bar := p.AddBar(int64(total), mpb.PrependDecorators(decor.Name("replay "), decor.CountersNoUnit("%d/%d")),
		mpb.AppendDecorators(decor.Percentage()))
	n := 0
	return func() {
		bar.Increment()
		if n++; n == total {
			p.Wait()
		}
	}
}

func adminCloseCommand() *cobra.Command {
	var s stack.Settings
	var flags *flagSet
	var a adminFlags
	cmd := &cobra.Command{
		Use:   "close ORDER_ID",
		Short: "Close an unpaid order (at WeChat first when it was offered to the payer)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flags.load(&s); err != nil {
				return err
			}
			if err := a.check(); err != nil {
				return err
			}
			c := engine.Command{ID: engine.AdminCommandID(engine.VerbClose), Verb: engine.VerbClose, Origin: engine.OriginAdmin, OrderID: engine.OrderID(args[0]),
				Actor: actor(a.who), Reason: a.reason, Close: &engine.CloseAsk{}}
			return sendAdmin(cmd, &s, c)
		},
	}
	flags = settingsFlags(cmd, &s, gData, gLog, gDB, gNATS)
	a.register(cmd)
	return cmd
}

func adminRefundCommand() *cobra.Command {
	var s stack.Settings
	var flags *flagSet
	var a adminFlags
	var amount int64
	cmd := &cobra.Command{
		Use:   "refund ORDER_ID --amount FEN",
		Short: "Refund part or all of a paid order (never more than remains)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flags.load(&s); err != nil {
				return err
			}
			if err := a.check(); err != nil {
				return err
			}
			if amount <= 0 {
				return errors.New("--amount must be a positive number of fen")
			}
			no := "wxr" + strings.TrimPrefix(engine.NewID("r"), "r_")
			c := engine.Command{ID: engine.AdminCommandID(engine.VerbRefund), Verb: engine.VerbRefund, Origin: engine.OriginAdmin, OrderID: engine.OrderID(args[0]),
				Actor: actor(a.who), Reason: a.reason, Refund: &engine.RefundAsk{OutRefundNo: no, AmountFen: amount, Reason: a.reason}}
			return sendAdmin(cmd, &s, c)
		},
	}
	flags = settingsFlags(cmd, &s, gData, gLog, gDB, gNATS)
	a.register(cmd)
	cmd.Flags().Int64Var(&amount, "amount", 0, "amount to refund, in fen")
	return cmd
}

// adminResolveCommand clears one flag of an order: the only way an alert
// (money may be wrong) goes, since neither a replay nor the reconciler
// clears one. Who and why are written to the order's history.
func adminResolveCommand() *cobra.Command {
	var s stack.Settings
	var flags *flagSet
	var a adminFlags
	var flag string
	cmd := &cobra.Command{
		Use:   "resolve ORDER_ID --flag FLAG --reason WHY",
		Short: "Clear one flag of an order once a person has dealt with it (alerts go no other way)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := flags.load(&s); err != nil {
				return err
			}
			if strings.TrimSpace(flag) == "" {
				return usageError{errors.New("--flag is required: the flag to clear (wxflow admin show lists them)")}
			}
			if err := a.check(); err != nil {
				return usageError{err}
			}
			c := engine.Command{ID: engine.AdminCommandID(engine.VerbResolve), Verb: engine.VerbResolve, Origin: engine.OriginAdmin, OrderID: engine.OrderID(args[0]),
				Actor: actor(a.who), Reason: a.reason, Resolve: &engine.Resolution{Flag: flag}}
			return sendAdmin(cmd, &s, c)
		},
	}
	flags = settingsFlags(cmd, &s, gData, gLog, gDB, gNATS)
	a.register(cmd)
	cmd.Flags().StringVar(&flag, "flag", "", "the flag to clear, e.g. amount_mismatch")
	return cmd
}

// sendAdmin publishes one admin command and says what the engine made of it
// when it answers in time.
func sendAdmin(cmd *cobra.Command, s *stack.Settings, c engine.Command) error {
	js, closeJS, err := connectJS(cmd, s)
	if err != nil {
		return err
	}
	defer closeJS()
	if _, err := engine.Publish(cmd.Context(), js, c, nil); err != nil {
		return err
	}
	store, err := stack.OpenStore(cmd.Context(), s)
	if err != nil {
		return err
	}
	defer store.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	for {
		res, ok, err := store.Outcome(ctx, c.ID)
		if err != nil {
			return err
		}
		if ok {
			if !res.Applied {
				return fmt.Errorf("refused: %s: %s", res.Code, res.Reason)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "done: order %s is %s\n", c.OrderID, res.Order.State)
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(cmd.OutOrStdout(), "sent; the engine will apply it when it runs")
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readCalls reads an order's call records from NATS, if NATS is reachable:
// `show` works on a data folder alone too, without them.
func readCalls(cmd *cobra.Command, s *stack.Settings, id engine.OrderID) ([]workers.CallRecord, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	nc, js, err := stack.ConnectNATS(ctx, s, natsauth.Monitor, false, s.Logger().With("component", "admin"))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	ctx, cancel = context.WithTimeout(cmd.Context(), 5*time.Second)
	defer cancel()
	return workers.ReadCalls(ctx, js, id)
}

func printCalls(w io.Writer, calls []workers.CallRecord, err error) {
	if err != nil {
		fmt.Fprintf(w, "calls to WeChat: unknown (%v)\n", err)
		return
	}
	fmt.Fprintln(w, "calls to WeChat")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range calls {
		asked := make([]string, len(c.Asked))
		for i, a := range c.Asked {
			asked[i] = strings.TrimSpace(a.API + " " + a.Answer)
		}
		fmt.Fprintf(tw, "  %s\t%s\ton %s\t#%d\t%s\t%s\t%s\t%s\t%s\n", c.At.UTC().Format("2006-01-02 15:04:05.000Z"), c.Worker, c.Event, c.Delivery,
			c.Took.Round(100*time.Microsecond), c.Outcome, c.Code, c.Error, strings.Join(asked, " → "))
	}
	tw.Flush()
}

// parseState reads --state: empty (every state) or one of the order states.
func parseState(s string) (engine.State, error) {
	if s == "" || slices.Contains(engine.AllStates, engine.State(s)) {
		return engine.State(s), nil
	}
	return "", usageError{fmt.Errorf("--state %q: want one of %v", s, engine.AllStates)}
}

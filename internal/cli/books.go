package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
	"github.com/wxflow/wxflow/workers/books"
)

// booksCommand runs a day's books on demand (through the running books
// worker) and prints them.
func booksCommand() *cobra.Command {
	var s stack.Settings
	var asJSON, asCSV, stored, all bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "books DAY",
		Short: "Reconcile a day (today, yesterday or 2006-01-02, Beijing time) with WeChat's bill, and print the books",
		Long: `Reconcile a day with WeChat's bill and print the books: wxflow's store × the notifications and
queries it received × the bill. The running books worker (wxflow dev, worker books or worker all)
downloads the bill, compares, stores the result and repairs what it can; this command asks it to, then
prints the stored result. When nothing runs, it prints the books as last stored.

Exit status: 0 when the day balances, 1 when it has discrepancies (or no books yet), 2 for usage errors.`,
		Args: cobra.ExactArgs(1),
	}
	flags := settingsFlags(cmd, &s, gData, gLog, gDB, gNATS, gMerchant)
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (every line)")
	f.BoolVar(&asCSV, "csv", false, "print the lines as CSV")
	f.BoolVar(&all, "all", false, "list the matched lines too (the table lists only discrepancies)")
	f.BoolVar(&stored, "stored", false, "print the books as last stored; do not run them")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the run")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		if asJSON && asCSV {
			return usageError{errors.New("--json or --csv, not both")}
		}
		day, err := parseBooksDay(args[0], time.Now())
		if err != nil {
			return usageError{err}
		}
		ctx := cmd.Context()
		store, err := stack.OpenStore(ctx, &s)
		if err != nil {
			return err
		}
		defer store.Close()
		errOut := cmd.ErrOrStderr()
		if !stored {
			runBooks(ctx, &s, day, timeout, errOut)
		}
		r, err := store.Books(ctx, s.MerchantName, day)
		if errors.Is(err, engine.ErrNotFound) {
			return fmt.Errorf("no books of %s for merchant %s yet", day, s.MerchantName)
		}
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		switch {
		case asJSON:
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			if err := enc.Encode(r); err != nil {
				return err
			}
		case asCSV:
			if err := writeBooksCSV(out, r); err != nil {
				return err
			}
		default:
			printBooks(out, r, all)
		}
		if n := r.Discrepancies(); n > 0 {
			return fmt.Errorf("books of %s: %d discrepancies", day, n)
		}
		return nil
	}
	return cmd
}

// parseBooksDay reads today, yesterday or a day, in Beijing time.
func parseBooksDay(s string, now time.Time) (engine.Day, error) {
	switch strings.ToLower(s) {
	case "today":
		return engine.DayOf(now), nil
	case "yesterday":
		return engine.DayOf(now).AddDays(-1), nil
	}
	return engine.ParseDay(s)
}

// runBooks asks the running books worker to run the day and says how it
// went; when nothing answers, it says the books shown are the stored ones.
func runBooks(ctx context.Context, s *stack.Settings, day engine.Day, timeout time.Duration, w io.Writer) {
	nc, _, err := stack.ConnectNATS(ctx, s, natsauth.Admin, false, s.Logger())
	if err != nil {
		fmt.Fprintf(w, "wxflow is not running (%v): the books as last stored\n", err)
		return
	}
	defer nc.Close()
	req, _ := json.Marshal(books.RunRequest{Day: day})
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := nc.RequestWithContext(rctx, books.RunSubject(s.MerchantName), req)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		fmt.Fprintln(w, "no books worker is running (wxflow dev, worker books or worker all): the books as last stored")
		return
	case err != nil:
		fmt.Fprintf(w, "the books worker did not answer (%v): the books as last stored\n", err)
		return
	}
	var reply books.RunReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		fmt.Fprintf(w, "the books worker's answer does not read (%v): the books as last stored\n", err)
		return
	}
	switch reply.Code {
	case "ok":
		if reply.Error != "" {
			fmt.Fprintf(w, "the books ran, but: %s\n", reply.Error)
		}
	case "not_ready":
		fmt.Fprintf(w, "WeChat's bill of %s is not ready yet (10:00 Beijing time the next day): the books as last stored\n", day)
	case "busy":
		fmt.Fprintln(w, "another process is running these books now: the books as last stored")
	default:
		fmt.Fprintf(w, "the books did not run: %s\n", reply.Error)
	}
}

// yuan writes fen as yuan with two decimals.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

// feeYuan writes thousandths of a fen as yuan with five decimals, as bills do.
func feeYuan(milliFen int64) string {
	sign := ""
	if milliFen < 0 {
		sign, milliFen = "-", -milliFen
	}
	return fmt.Sprintf("%s%d.%05d", sign, milliFen/100000, milliFen%100000)
}

// printBooks writes the result as a table for a person.
func printBooks(w io.Writer, r engine.BooksResult, all bool) {
	state := "balanced"
	if r.Status != engine.BooksBalanced {
		state = fmt.Sprintf("%d DISCREPANCIES", r.Discrepancies())
	}
	fmt.Fprintf(w, "Books of %s (Beijing time), merchant %s: %s\n", r.Day, r.Merchant, state)
	switch {
	case r.NoBill:
		fmt.Fprintln(w, "WeChat: no bill (no trade that day)")
	default:
		fmt.Fprintf(w, "WeChat's bill: SHA-1 %s", r.BillSHA1)
		if !r.Final {
			fmt.Fprint(w, " (a preview: the day was not over)")
		}
		fmt.Fprintln(w)
	}
	times := fmt.Sprintf("%d times", r.Runs)
	if r.Runs == 1 {
		times = "once"
	}
	fmt.Fprintf(w, "Run %s, the last at %s\n\n", times, r.RunAt.In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05 (Beijing)"))
	t := r.Totals
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tpayments\tpaid\trefunds\trefunded\tfees\tsettled\t")
	fmt.Fprintf(tw, "WeChat\t%d\t%s\t%d\t%s\t%s\t%s\t\n", t.WechatPayments, yuan(t.WechatPaidFen), t.WechatRefunds, yuan(t.WechatRefundedFen),
		feeYuan(t.FeeMilliFen), feeYuan(t.SettledMilliFen()))
	fmt.Fprintf(tw, "wxflow\t%d\t%s\t%d\t%s\t\t\t\n", t.WxflowPayments, yuan(t.WxflowPaidFen), t.WxflowRefunds, yuan(t.WxflowRefundedFen))
	tw.Flush()
	fmt.Fprintln(w)
	var counts []string
	for _, k := range engine.BooksKinds {
		if n := r.Counts[k]; n > 0 || k == engine.BooksMatched {
			counts = append(counts, fmt.Sprintf("%s %d", k, n))
		}
	}
	fmt.Fprintf(w, "%d lines: %s\n", len(r.Lines), strings.Join(counts, ", "))
	var lines []engine.BooksLine
	for _, l := range r.Lines {
		if all || l.Kind.Discrepancy() || l.Kind == engine.BooksLater {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tTRADE\tOUT_TRADE_NO\tOUT_REFUND_NO\tWECHAT\tWXFLOW\tREPAIR\tDETAIL")
	for _, l := range lines {
		repair := l.Repair
		if l.Flag != "" {
			repair += " " + l.Flag
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %s\t%s %s\t%s\t%s\n", l.Kind, l.Trade, l.OutTradeNo, dash(l.OutRefundNo),
			yuan(l.WechatFen), l.WechatState, yuan(l.WxflowFen), l.WxflowState, dash(repair), l.Detail)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell keeps a text a spreadsheet would read as a formula a text: WeChat's
// bill and the shops' numbers are outside input.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// writeBooksCSV writes every line as CSV, with a header; its numbers are
// plain integers (fen, and thousandths of a fen for fees).
func writeBooksCSV(w io.Writer, r engine.BooksResult) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"day", "merchant", "kind", "trade", "order_id", "out_trade_no", "out_refund_no", "transaction_id",
		"wechat_fen", "wxflow_fen", "wechat_state", "wxflow_state", "fee_milli_fen", "repair", "flag", "detail"})
	for _, l := range r.Lines {
		_ = cw.Write([]string{string(r.Day), cell(r.Merchant), string(l.Kind), l.Trade, cell(string(l.OrderID)), cell(l.OutTradeNo),
			cell(l.OutRefundNo), cell(l.TransactionID), strconv.FormatInt(l.WechatFen, 10), strconv.FormatInt(l.WxflowFen, 10),
			cell(l.WechatState), cell(l.WxflowState), strconv.FormatInt(l.FeeMilliFen, 10), l.Repair, l.Flag, cell(l.Detail)})
	}
	cw.Flush()
	return cw.Error()
}

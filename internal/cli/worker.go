package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
)

// workerCommand runs one worker kind, or all of them.
func workerCommand() *cobra.Command {
	var s stack.Settings
	kinds := stack.WorkerKinds()
	cmd := &cobra.Command{
		Use:       "worker KIND",
		Short:     "Run a worker: " + strings.Join(kinds[:len(kinds)-4], ", ") + ", tokens (the shared token refresher), books (the daily books; needs --db), webhook (shops' webhooks; needs --db), or all",
		ValidArgs: kinds,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("want one worker kind: %s", strings.Join(kinds, ", "))}
			}
			if err := stack.CheckWorkerKind(args[0]); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	flags := settingsFlags(cmd, &s, gData, gLog, gNATS, gHTTP, gMerchant, gWechat, gMetrics, gWorkers, gDB, gBooks, gSecret, gWebhook)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		ctx, log := cmd.Context(), s.Logger().With("component", "worker")
		if args[0] == stack.WorkerWebhook { // the store alone: no NATS, no WeChat
			c, err := stack.ConnectStore(ctx, &s, log)
			if err != nil {
				return err
			}
			defer c.Close()
			stack.ServeMetrics(ctx, s.MetricsAddr, c.Metrics, log)
			w, err := stack.NewWorkers(ctx, &s, c, nil, args[0], stack.WorkerOptions{})
			if err != nil {
				return err
			}
			return stoppedByUser(ctx, w.Run(ctx))
		}
		c, err := stack.Connect(ctx, &s, natsauth.Worker(args[0]), stack.NeedsStore(args[0]), log)
		if err != nil {
			return err
		}
		defer c.Close()
		stack.ServeMetrics(ctx, s.MetricsAddr, c.Metrics, log)
		wc, err := stack.NewWechatClients(&s, c.Metrics)
		if err != nil {
			return err
		}
		w, err := stack.NewWorkers(ctx, &s, c, wc, args[0], stack.WorkerOptions{})
		if err != nil {
			return err
		}
		return stoppedByUser(ctx, w.Run(ctx))
	}
	return cmd
}

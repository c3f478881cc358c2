package cli

import (
	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
)

// engineCommand runs the command intake, the outbox relay, the expiry and the reconciler.
func engineCommand() *cobra.Command {
	var s stack.Settings
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Run the engine: command intake, outbox relay, order expiry, the reconciler",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gLog, gDB, gNATS, gMetrics, gEngine)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		ctx, log := cmd.Context(), s.Logger()
		c, err := stack.Connect(ctx, &s, natsauth.Engine, true, log)
		if err != nil {
			return err
		}
		defer c.Close()
		stack.ServeMetrics(ctx, s.MetricsAddr, c.Metrics, log)
		eng, err := stack.NewEngine(&s, c)
		if err != nil {
			return err
		}
		log.Info("engine running", "component", "engine", "db", s.RedactedDBURL(), "nats", s.NATSURL)
		return stoppedByUser(ctx, eng.Run(ctx))
	}
	return cmd
}

package main

import (
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine/natsembed"
)

// natsCommand runs the embedded NATS server alone, for deployments (the
// Procfile) that want one without installing nats-server.
func natsCommand() *cobra.Command {
	var s settings
	var host string
	var port int
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the embedded NATS server with JetStream (never on 4222 by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s.resolve()
			log := s.logger("nats")
			ns, err := natsembed.Start(natsembed.Config{
				Host: host, Port: port, StoreDir: filepath.Join(s.DataDir, "nats"), ServerName: "wxflow",
			})
			if err != nil {
				return err
			}
			defer ns.Stop()
			if err := ns.WriteURLFile(s.DataDir); err != nil {
				return err
			}
			log.Info("NATS ready", "url", ns.ClientURL())
			<-cmd.Context().Done()
			return nil
		},
	}
	s.register(cmd.Flags())
	cmd.Flags().StringVar(&host, "host", "127.0.0.1", "listen host")
	cmd.Flags().IntVar(&port, "port", natsembed.DefaultPort, "listen port (-1: any free port)")
	return cmd
}

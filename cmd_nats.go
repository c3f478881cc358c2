package main

import (
	"cmp"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/engine/natsembed"
)

// natsCommand runs the embedded NATS server alone, for deployments (the
// Procfile) that want one without installing nats-server; with --cluster-port
// and --routes it runs one node of a JetStream cluster (then set
// WXFLOW_NATS_REPLICAS=3 for the other processes).
func natsCommand() *cobra.Command {
	var s settings
	var host, name, store string
	var port int
	var cluster natsembed.ClusterConfig
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the embedded NATS server with JetStream (never on 4222 by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s.resolve()
			log := s.logger("nats")
			cfg := natsembed.Config{Host: host, Port: port, ServerName: name,
				StoreDir: cmp.Or(store, filepath.Join(s.DataDir, "nats"))}
			if cluster.Port != 0 {
				cfg.Cluster = &cluster
			}
			ns, err := natsembed.Start(cfg)
			if err != nil {
				return err
			}
			defer ns.Stop()
			if cfg.Cluster == nil { // a cluster's clients are given every node's URL
				if err := ns.WriteURLFile(s.DataDir); err != nil {
					return err
				}
			}
			log.Info("NATS ready", "url", ns.ClientURL(), "name", name)
			<-cmd.Context().Done()
			return nil
		},
	}
	s.register(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&host, "host", "127.0.0.1", "listen host")
	f.IntVar(&port, "port", natsembed.DefaultPort, "listen port (-1: any free port)")
	f.StringVar(&name, "name", "wxflow", "server name, unique in a cluster")
	f.StringVar(&store, "store", "", "JetStream folder (default <data>/nats)")
	f.StringVar(&cluster.Name, "cluster-name", "wxflow", "cluster name, the same on every node")
	f.IntVar(&cluster.Port, "cluster-port", 0, "listen for cluster routes on this port (0: no cluster)")
	f.StringSliceVar(&cluster.Routes, "routes", nil, "the other nodes' route URLs, e.g. nats://127.0.0.1:6251,nats://127.0.0.1:6252")
	return cmd
}

package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/natsembed"
	"github.com/wxflow/wxflow/internal/stack"
)

// natsCommand runs the embedded NATS server alone, for deployments (the
// Procfile) that want one without installing nats-server; with --cluster-port
// and --routes it runs one node of a JetStream cluster (then set
// WXFLOW_NATS_REPLICAS=3 for the other processes).
func natsCommand() *cobra.Command {
	var s stack.Settings
	var cfg natsembed.Config
	var cluster natsembed.ClusterConfig
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the embedded NATS server with JetStream (never on 4222 by default)",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gLog, gNATSUsers)
	f := cmd.Flags()
	f.StringVar(&cfg.Host, "host", "127.0.0.1", "listen host")
	f.IntVar(&cfg.Port, "port", natsembed.DefaultPort, "listen port (-1: any free port)")
	f.StringVar(&cfg.ServerName, "name", "wxflow", "server name, unique in a cluster")
	f.StringVar(&cfg.StoreDir, "store", "", "JetStream folder (default <data>/nats)")
	f.StringVar(&cluster.Name, "cluster-name", "wxflow", "cluster name, the same on every node")
	f.IntVar(&cluster.Port, "cluster-port", 0, "listen for cluster routes on this port (0: no cluster)")
	f.StringSliceVar(&cluster.Routes, "routes", nil, "the other nodes' route URLs, e.g. nats://127.0.0.1:6251,nats://127.0.0.1:6252")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		log := s.Logger().With("component", "nats")
		if cluster.Port != 0 {
			cfg.Cluster = &cluster
		}
		ns, err := stack.StartNATS(&s, cfg)
		if err != nil {
			return err
		}
		defer ns.Stop()
		log.Info("NATS ready", "url", ns.ClientURL(), "name", cfg.ServerName, "users", !s.NATSNoAuth)
		stack.WatchUsers(cmd.Context(), &s, ns, log)
		<-cmd.Context().Done() // WatchUsers returns at once without users (--no-auth)
		return nil
	}
	cmd.AddCommand(natsConfigCommand())
	return cmd
}

// natsConfigCommand prints the authorization block an external nats-server
// needs to give wxflow's users their permissions.
func natsConfigCommand() *cobra.Command {
	var s stack.Settings
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the users and permissions block for an external nats-server's configuration (keys made in <data>/nats/creds)",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		dir := natsauth.Dir(s.DataDir)
		users, err := natsauth.Ensure(dir, natsauth.Internal())
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		fmt.Fprint(out, natsauth.ServerConfig(users))
		fmt.Fprintf(out, "# Each process reads its role's seed: WXFLOW_NATS_CREDS=%s/<role>.nk (engine, api, admin, monitor, worker-<kind>, shop-<name>).\n", dir)
		return nil
	}
	return cmd
}

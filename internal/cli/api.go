package cli

import (
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/wxflow/wxflow/api"
	"github.com/wxflow/wxflow/internal/natsauth"
	"github.com/wxflow/wxflow/internal/stack"
)

// apiCommand runs the HTTP API.
func apiCommand() *cobra.Command {
	var s stack.Settings
	var noAdmin bool
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run the HTTP API: the shop API, WeChat's notification endpoints, the admin page",
		Args:  cobra.NoArgs,
	}
	flags := settingsFlags(cmd, &s, gData, gLog, gDB, gNATS, gHTTP, gRates, gMerchant, gWechat, gStuck, gSecret, gWebhook)
	cmd.Flags().BoolVar(&noAdmin, "no-admin", false, "serve no admin page or API")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := flags.load(&s); err != nil {
			return err
		}
		if s.AdminToken == "" && !noAdmin {
			return usageError{errors.New("set WXFLOW_ADMIN_TOKEN for the admin page and API, or pass --no-admin")}
		}
		if noAdmin {
			s.AdminToken = ""
		}
		if err := stack.CheckAdminToken(&s); err != nil {
			return err
		}
		ctx, log := cmd.Context(), s.Logger()
		c, err := stack.Connect(ctx, &s, natsauth.API, true, log)
		if err != nil {
			return err
		}
		defer c.Close()
		wc, err := stack.NewWechatClients(&s, c.Metrics)
		if err != nil {
			return err
		}
		srv, err := stack.NewAPI(&s, c, wc)
		if err != nil {
			return err
		}
		internal, err := net.Listen("tcp", s.HTTPAddr)
		if err != nil {
			return usageError{fmt.Errorf("--http: %w", err)}
		}
		public, err := net.Listen("tcp", s.PublicAddr)
		if err != nil {
			internal.Close()
			return usageError{fmt.Errorf("--public-addr: %w", err)}
		}
		log.Info("API listening", "component", "api", "internal", "http://"+internal.Addr().String(),
			"public", "http://"+public.Addr().String(), "public_url", s.PublicURL)
		return stoppedByUser(ctx, srv.Run(ctx, api.Listeners{Public: public, Internal: internal}))
	}
	return cmd
}

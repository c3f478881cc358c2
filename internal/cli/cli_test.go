package cli

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return strconv.Itoa(port)
}

// TestSettingsAreStrict: what a user typed or set wrong is one line and exit
// status 2 before anything connects; a deployment that is not there is one
// line and status 1, at once.
func TestSettingsAreStrict(t *testing.T) {
	data := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantErr  string
	}{
		{name: "unknown command", args: []string{"bogus"}, wantCode: ExitUsage, wantErr: `unknown command "bogus"`},
		{name: "unknown worker", args: []string{"worker", "bogus"}, wantCode: ExitUsage, wantErr: `unknown worker "bogus"`},
		{name: "no worker kind", args: []string{"worker"}, wantCode: ExitUsage, wantErr: "want one worker kind"},
		{name: "unknown flag", args: []string{"migrate", "--bogus"}, wantCode: ExitUsage, wantErr: "unknown flag"},
		{name: "unknown db scheme", args: []string{"migrate", "--db", "mysql://x"}, wantCode: ExitUsage, wantErr: `unknown scheme "mysql"`},
		{name: "malformed env number", args: []string{"worker", "all"}, env: map[string]string{"WXFLOW_WORKER_LANES": "abc"}, wantCode: ExitUsage, wantErr: "WXFLOW_WORKER_LANES"},
		{name: "malformed env duration", args: []string{"engine"}, env: map[string]string{"WXFLOW_RECONCILE_PAYMENT_AFTER": "soon"}, wantCode: ExitUsage, wantErr: "WXFLOW_RECONCILE_PAYMENT_AFTER"},
		{name: "malformed stream limit", args: []string{"engine"}, env: map[string]string{"WXFLOW_STREAM_MAX_BYTES": "1GiB"}, wantCode: ExitUsage, wantErr: "WXFLOW_STREAM_MAX_BYTES"},
		{name: "negative stream limit", args: []string{"engine", "--stream-max-msgs", "-1"}, wantCode: ExitUsage, wantErr: "--stream-max-msgs"},
		{name: "unknown log format", args: []string{"migrate", "--data", data}, env: map[string]string{"WXFLOW_LOG": "xml"}, wantCode: ExitUsage, wantErr: "--log"},
		{name: "bad NATS URL", args: []string{"engine", "--nats", "localhost:4222"}, wantCode: ExitUsage, wantErr: "--nats"},
		{name: "bad stuck-after", args: []string{"admin", "stuck", "--data", data, "--stuck-after", "notified=1m"}, wantCode: ExitUsage, wantErr: "--stuck-after"},
		{name: "missing data folder", args: []string{"admin", "stuck", "--data", filepath.Join(data, "nope")}, wantCode: ExitUsage, wantErr: "no such folder"},
		{name: "unknown state", args: []string{"admin", "stuck", "--data", data, "--state", "bogus"}, wantCode: ExitUsage, wantErr: `--state "bogus"`},
		{name: "bench pay api", args: []string{"bench", "--pay-api", "v4"}, wantCode: ExitUsage, wantErr: "--pay-api"},
		{name: "bench workers", args: []string{"bench", "--workers", "some"}, wantCode: ExitUsage, wantErr: "--workers"},
		{name: "bench negative rate", args: []string{"bench", "--rate", "-1"}, wantCode: ExitUsage, wantErr: "--rate"},
		{name: "bench engines on SQLite", args: []string{"bench", "--engines", "2"}, wantCode: ExitUsage, wantErr: "several engines need PostgreSQL"},
		{name: "bench profile without a file", args: []string{"bench", "profile", "--", "version"}, wantCode: ExitUsage, wantErr: "--cpu is required"},
		{name: "api with a short admin token", args: []string{"api", "--data", data}, env: map[string]string{"WXFLOW_ADMIN_TOKEN": "local-admin-token"}, wantCode: ExitUsage, wantErr: "WXFLOW_ADMIN_TOKEN: admin token: 17 bytes, at least 32"},
		{name: "api with a short named token", args: []string{"api", "--data", data}, env: map[string]string{"WXFLOW_ADMIN_TOKEN": "alice=" + strings.Repeat("a", 32) + ",bob=short"}, wantCode: ExitUsage, wantErr: `admin token of "bob"`},
		{name: "dev with a short admin token", args: []string{"dev", "--data", data}, env: map[string]string{"WXFLOW_ADMIN_TOKEN": "dev"}, wantCode: ExitUsage, wantErr: "at least 32 are required"},
		{name: "api without admin token", args: []string{"api", "--data", data}, env: map[string]string{"WXFLOW_ADMIN_TOKEN": ""}, wantCode: ExitUsage, wantErr: "WXFLOW_ADMIN_TOKEN"},
		{name: "app domain with a scheme", args: []string{"api", "--data", data, "--app-domains", "https://shop.example"}, env: map[string]string{"WXFLOW_ADMIN_TOKEN": "t"},
			wantCode: ExitUsage, wantErr: "--app-domains"},
		{name: "shop without merchant", args: []string{"shop", "add", "acme", "--data", data}, wantCode: ExitUsage, wantErr: "--merchant is required"},
		{name: "bad shop name", args: []string{"shop", "add", "Acme!", "--merchant", "default", "--data", data}, wantCode: ExitUsage, wantErr: "shop name"},
		{name: "no running deployment", args: []string{"admin", "replay", "o_1", "--reason", "test", "--data", data}, wantCode: ExitError,
			wantErr: "holds no record of a running wxflow"},
		{name: "nothing answers", args: []string{"admin", "close", "o_1", "--reason", "test", "--data", data, "--nats", "nats://127.0.0.1:" + closedPort(t)},
			wantCode: ExitError, wantErr: "nothing answers at the NATS URL"},
		{name: "books of no day", args: []string{"books", "2024-13-01", "--data", data}, wantCode: ExitUsage, wantErr: `"2024-13-01" is not a day`},
		{name: "books in two formats", args: []string{"books", "today", "--json", "--csv", "--data", data}, wantCode: ExitUsage, wantErr: "not both"},
		{name: "books never run", args: []string{"books", "2024-03-10", "--stored", "--data", data}, wantCode: ExitError, wantErr: "no books of 2024-03-10"},
		{name: "books api", args: []string{"worker", "books", "--books-api", "v4"}, wantCode: ExitUsage, wantErr: "--books-api"},
		{name: "verify without NATS", args: []string{"verify", "--data", data, "--nats", "nats://127.0.0.1:" + closedPort(t)},
			wantCode: ExitError, wantErr: "use --no-stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errOut strings.Builder
			code := Execute(t.Context(), tc.args, &out, &errOut)
			if code != tc.wantCode || !strings.Contains(errOut.String(), tc.wantErr) {
				t.Fatalf("wxflow %s: status %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), code, errOut.String(), tc.wantCode, tc.wantErr)
			}
			if lines := strings.Count(strings.TrimSpace(errOut.String()), "\n"); lines > 0 {
				t.Errorf("the error takes %d lines, want one: %s", lines+1, errOut.String())
			}
		})
	}
}

// TestEachCommandShowsItsFlags: a subcommand's help lists the settings it
// reads and none it ignores.
func TestEachCommandShowsItsFlags(t *testing.T) {
	tests := []struct {
		args     []string
		want     []string
		wantNone []string
	}{
		{args: []string{"admin", "resolve"}, want: []string{"--flag", "--reason", "--who", "--db", "--nats"}, wantNone: []string{"--http", "--worker-lanes"}},
		{args: []string{"admin", "close"}, want: []string{"--data", "--db", "--nats", "--reason"}, wantNone: []string{"--http", "--worker-lanes", "--wechat-url", "--metrics-addr"}},
		{args: []string{"worker"}, want: []string{"--nats", "--worker-lanes", "--wechat-url", "--metrics-addr", "--db", "--books-api", "--server-secret-file", "--webhook-allow-private"}, wantNone: []string{"--stuck-after", "--reconcile-payment-after"}},
		{args: []string{"books"}, want: []string{"--db", "--nats", "--merchant", "--json", "--csv", "--stored"}, wantNone: []string{"--http", "--worker-lanes"}},
		{args: []string{"shop", "webhook", "add"}, want: []string{"--db", "--server-secret-file", "--webhook-allow-private"}, wantNone: []string{"--nats", "--http"}},
		{args: []string{"engine"}, want: []string{"--db", "--nats", "--reconcile-payment-after", "--reconcile-refund-after", "--expiry-interval", "--stream-max-bytes", "--stream-max-msgs"}, wantNone: []string{"--http", "--wechat-url", "--worker-lanes"}},
		{args: []string{"dev"}, want: []string{"--reconcile-payment-after", "--worker-lanes", "--nats-port", "--http"}, wantNone: []string{"--nats ", "--wechat-url", "--merchant-dir", "--reconcile-after"}},
		{args: []string{"migrate"}, want: []string{"--db"}, wantNone: []string{"--nats", "--http"}},
		{args: []string{"shop", "add"}, want: []string{"--db", "--merchant", "--server-secret-file", "--key-file", "--if-missing"}, wantNone: []string{"--nats", "--http"}},
		{args: []string{"api"}, want: []string{"--app-domains", "--server-secret-file"}, wantNone: []string{"--worker-lanes"}},
	}
	for _, tc := range tests {
		var out strings.Builder
		if code := Execute(t.Context(), append(tc.args, "--help"), &out, &out); code != ExitOK {
			t.Fatalf("%v --help: status %d: %s", tc.args, code, out.String())
		}
		for _, f := range tc.want {
			if !strings.Contains(out.String(), f) {
				t.Errorf("wxflow %s --help lacks %s", strings.Join(tc.args, " "), f)
			}
		}
		for _, f := range tc.wantNone {
			if strings.Contains(out.String(), f) {
				t.Errorf("wxflow %s --help shows %s, which it does not read", strings.Join(tc.args, " "), f)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	var out, errOut strings.Builder
	if code := Execute(t.Context(), []string{"version"}, &out, &errOut); code != ExitOK || !strings.HasPrefix(out.String(), "wxflow ") {
		t.Fatalf("version: status %d, %q %q", code, out.String(), errOut.String())
	}
}

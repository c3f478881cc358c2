package stack

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestWechatPayBackup: which backup host the pay clients fail over to, and
// the settings refused.
func TestWechatPayBackup(t *testing.T) {
	tests := []struct {
		name    string
		given   Settings
		want    string
		wantErr string
	}{
		{name: "WeChat's hosts: its backup", given: Settings{}, want: "https://api2.mch.weixin.qq.com"},
		{name: "WeChat's hosts, failover off", given: Settings{WechatBackupURL: "off"}, want: ""},
		{name: "a simulator: none unless given", given: Settings{WechatURL: "https://127.0.0.1:8443"}, want: ""},
		{name: "a simulator and its second site", given: Settings{WechatURL: "https://127.0.0.1:8443", WechatBackupURL: "https://127.0.0.1:8444/"}, want: "https://127.0.0.1:8444"},
		{name: "another backup for WeChat's hosts", given: Settings{WechatBackupURL: "https://pay-backup.example"}, want: "https://pay-backup.example"},
		{name: "the primary itself", given: Settings{WechatBackupURL: "https://api.mch.weixin.qq.com"}, wantErr: "--wechat-backup-url"},
		{name: "the simulator itself", given: Settings{WechatURL: "https://127.0.0.1:8443", WechatBackupURL: "https://127.0.0.1:8443"}, wantErr: "the primary itself"},
		{name: "a path", given: Settings{WechatBackupURL: "https://api2.mch.weixin.qq.com/v3"}, wantErr: "--wechat-backup-url"},
		{name: "credentials in the URL", given: Settings{WechatBackupURL: "https://u:p@api2.mch.weixin.qq.com"}, wantErr: "--wechat-backup-url"},
		{name: "no scheme", given: Settings{WechatBackupURL: "api2.mch.weixin.qq.com"}, wantErr: "--wechat-backup-url"},
		{name: "a primary with a path", given: Settings{WechatURL: "https://127.0.0.1:8443/wx", WechatBackupURL: "https://127.0.0.1:8444"}, wantErr: "--wechat-url of scheme and host only"},
		{name: "plain http to another machine", given: Settings{WechatBackupURL: "http://api2.mch.weixin.qq.com"}, wantErr: "plain http"},
		{name: "plain http to a local fake", given: Settings{WechatURL: "http://127.0.0.1:9000", WechatBackupURL: "http://localhost:9001"}, want: "http://localhost:9001"},
		{name: "a negative probe delay", given: Settings{WechatProbeAfter: -time.Second}, wantErr: "--wechat-probe-after"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.given
			s.Resolve()
			err := s.Validate()
			if tc.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.WechatPayBackup(); got != tc.want {
				t.Errorf("backup %q, want %q", got, tc.want)
			}
			if s.WechatProbeAfter != 30*time.Second && tc.given.WechatProbeAfter == 0 {
				t.Errorf("probe after %s, want the 30s default", s.WechatProbeAfter)
			}
		})
	}
}

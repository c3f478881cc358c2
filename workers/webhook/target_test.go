package webhook_test

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/wxflow/wxflow/workers/webhook"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url, want string
		private   bool  // allowPrivate
		wantErr   error // nil: accepted, as want ("" = unchanged)
	}{
		{url: "https://shop.example.com/hooks/wxflow?token=abc"},
		{url: "HTTPS://Shop.Example.COM/Path", want: "https://shop.example.com/Path"},
		{url: "http://shop.example.com:8080/h"},
		{url: "https://93.184.216.34/h"},
		{url: "https://[2606:2800:220:1:248:1893:25c8:1946]/h"},
		{url: "https://xn--fiqs8s.xn--fiqz9s/h"},
		{url: "ftp://shop.example.com/", wantErr: webhook.ErrBadURL},
		{url: "javascript:alert(1)", wantErr: webhook.ErrBadURL},
		{url: "file:///etc/passwd", wantErr: webhook.ErrBadURL},
		{url: "//shop.example.com/h", wantErr: webhook.ErrBadURL},
		{url: "https:shop.example.com", wantErr: webhook.ErrBadURL},
		{url: "https://user:pass@shop.example.com/", wantErr: webhook.ErrBadURL},
		{url: "https://shop.example.com/#frag", wantErr: webhook.ErrBadURL},
		{url: "https://shop.example.com/a b", wantErr: webhook.ErrBadURL},
		{url: "https://shop.example.com/\x00", wantErr: webhook.ErrBadURL},
		{url: "https://商店.中国/", wantErr: webhook.ErrBadURL},
		{url: "https://shop.example.com:0/", wantErr: webhook.ErrBadURL},
		{url: "https://shop.example.com:99999/", wantErr: webhook.ErrBadURL},
		{url: "https://shop.example.com:/", wantErr: webhook.ErrBadURL},
		{url: "https://shop_example.com/", wantErr: webhook.ErrBadURL},
		{url: "https://shop.example.com./", wantErr: webhook.ErrBadURL},
		{url: "https://[fe80::1%25eth0]/", wantErr: webhook.ErrBadURL},
		{url: "https://" + strings.Repeat("a", webhook.MaxURLBytes) + ".com/", wantErr: webhook.ErrBadURL},
		{url: "", wantErr: webhook.ErrBadURL},
		// Not public: refused unless allowed.
		{url: "http://127.0.0.1:9000/h", wantErr: webhook.ErrPrivateTarget},
		{url: "http://127.0.0.1:9000/h", private: true},
		{url: "http://localhost:9000/h", wantErr: webhook.ErrPrivateTarget},
		{url: "http://localhost:9000/h", private: true},
		{url: "http://api.localhost/h", wantErr: webhook.ErrPrivateTarget},
		{url: "http://printer.local/h", wantErr: webhook.ErrPrivateTarget},
		{url: "http://db.internal/h", wantErr: webhook.ErrPrivateTarget},
		{url: "http://nas.home.arpa/h", wantErr: webhook.ErrPrivateTarget},
		{url: "http://metadata/computeMetadata/v1/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://169.254.169.254/latest/meta-data/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://10.0.0.5:5432/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://10.0.0.5:5432/", private: true},
		{url: "http://[fd00::1]/", private: true},
		{url: "http://100.64.0.1/", private: true},
		{url: "http://169.254.169.254/latest/meta-data/", private: true, wantErr: webhook.ErrPrivateTarget},
		{url: "http://[fe80::1]/", private: true, wantErr: webhook.ErrPrivateTarget},
		{url: "http://[::ffff:169.254.169.254]/", private: true, wantErr: webhook.ErrPrivateTarget},
		{url: "http://[64:ff9b::a9fe:a9fe]/", private: true, wantErr: webhook.ErrPrivateTarget},
		{url: "http://0.0.0.0/", private: true, wantErr: webhook.ErrPrivateTarget},
		{url: "http://224.0.0.1/", private: true, wantErr: webhook.ErrPrivateTarget},
		{url: "http://255.255.255.255/", private: true, wantErr: webhook.ErrPrivateTarget},
		{url: "http://192.168.1.1/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://172.16.0.1/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://100.64.0.1/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://0.0.0.0/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://[::1]/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://[::ffff:127.0.0.1]/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://[::ffff:169.254.169.254]/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://[64:ff9b::a00:1]/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://[2002:a00:1::]/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://[fd00::1]/", wantErr: webhook.ErrPrivateTarget},
		// Numeric tricks a resolver may read as 127.0.0.1.
		{url: "http://127.1/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://2130706433/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://0x7f.0x0.0x0.0x1/", wantErr: webhook.ErrPrivateTarget},
		{url: "http://0177.0.0.1/", wantErr: webhook.ErrPrivateTarget},
	} {
		got, err := webhook.CheckURL(tc.url, tc.private)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("CheckURL(%q, %v) = %q, %v; want %v", tc.url, tc.private, got, err, tc.wantErr)
			}
			continue
		}
		want := tc.want
		if want == "" {
			want = tc.url
		}
		if err != nil || got != want {
			t.Errorf("CheckURL(%q, %v) = %q, %v; want %q", tc.url, tc.private, got, err, want)
		}
	}
}

func TestPublic(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"93.184.216.34", true}, {"8.8.8.8", true}, {"2606:4700::1111", true}, {"64:ff9b::808:808", true},
		{"127.0.0.1", false}, {"127.255.255.254", false}, {"10.1.2.3", false}, {"172.31.255.255", false},
		{"192.168.0.1", false}, {"169.254.169.254", false}, {"100.100.100.200", false}, {"0.0.0.0", false},
		{"255.255.255.255", false}, {"224.0.0.1", false}, {"198.18.0.1", false}, {"192.0.2.1", false},
		{"::", false}, {"::1", false}, {"fe80::1", false}, {"fc00::1", false}, {"ff02::1", false},
		{"::ffff:10.0.0.1", false}, {"64:ff9b::7f00:1", false}, {"2002:7f00:1::", false}, {"2001:db8::1", false},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false}, {"fec0::1", false},
	} {
		if got := webhook.Public(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Public(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

func TestPermitted(t *testing.T) {
	for _, tc := range []struct {
		addr            string
		public, private bool // permitted without and with allowPrivate
	}{
		{"93.184.216.34", true, true}, {"127.0.0.1", false, true}, {"::1", false, true}, {"10.1.2.3", false, true},
		{"192.168.1.10", false, true}, {"fd12::1", false, true}, {"100.64.1.1", false, true}, {"::ffff:10.0.0.1", false, true},
		{"169.254.169.254", false, false}, {"fe80::1", false, false}, {"::ffff:169.254.169.254", false, false},
		{"64:ff9b::a9fe:a9fe", false, false}, {"0.0.0.0", false, false}, {"::", false, false}, {"224.0.0.251", false, false},
		{"ff02::fb", false, false}, {"255.255.255.255", false, false}, {"240.0.0.1", false, false}, {"192.0.2.7", false, false},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := webhook.Permitted(a, false); got != tc.public {
			t.Errorf("Permitted(%s, false) = %v", tc.addr, got)
		}
		if got := webhook.Permitted(a, true); got != tc.private {
			t.Errorf("Permitted(%s, true) = %v", tc.addr, got)
		}
	}
}

// FuzzCheckURL: whatever CheckURL accepts is an http(s) URL with a host,
// no user, no fragment; without allowPrivate no private address literal,
// with it no link-local one; and it is accepted again unchanged.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://shop.example.com/h?x=1", "http://127.0.0.1:8080/", "http://[::ffff:10.0.0.1]/",
		"https://user@shop.example.com/", "HTTP://SHOP.EXAMPLE.COM", "http://0x7f.1/", "https://xn--fiqs8s.xn--fiqz9s/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, allow := range []bool{false, true} {
			got, err := webhook.CheckURL(raw, allow)
			if err != nil {
				if !errors.Is(err, webhook.ErrBadURL) && !errors.Is(err, webhook.ErrPrivateTarget) {
					t.Fatalf("CheckURL(%q, %v): an error of no kind: %v", raw, allow, err)
				}
				continue
			}
			u, perr := url.Parse(got)
			if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
				t.Fatalf("CheckURL(%q, %v) accepted %q (%v)", raw, allow, got, perr)
			}
			if a, err := netip.ParseAddr(u.Hostname()); err == nil && !webhook.Permitted(a, allow) {
				t.Fatalf("CheckURL(%q, %v) accepted the address %s", raw, allow, a)
			}
			if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Unmap().IsLinkLocalUnicast() {
				t.Fatalf("CheckURL(%q, %v) accepted the link-local address %s", raw, allow, a)
			}
			if again, err := webhook.CheckURL(got, allow); err != nil || again != got {
				t.Fatalf("CheckURL(%q, %v) = %q, but then %q, %v", raw, allow, got, again, err)
			}
		}
	})
}

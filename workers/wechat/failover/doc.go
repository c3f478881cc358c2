// Package failover sends WeChat Pay calls to WeChat's backup host when its
// primary host fails, and back to the primary once it answers again.
//
// WeChat Pay publishes two hosts with the same paths that reach different
// sites: api.mch.weixin.qq.com and, for the day that site fails,
// api2.mch.weixin.qq.com. Both sites share their state, and every pay call
// wxflow makes is idempotent by its merchant-side number (out_trade_no,
// out_refund_no), so a call the primary may or may not have applied can be
// made again on the backup without a second effect.
//
// [Hosts] holds the two base URLs and one breaker per host; its
// [Hosts.Transport] wraps an http.RoundTripper. A call addressed to the
// primary goes to the first host whose breaker lets it through. The next
// host is tried when a host fails in a way that says the site is down:
//
//   - no connection (refused, unreachable, a TLS handshake that fails):
//     the host's breaker opens at once;
//   - no answer in time (the attempt's own timeout, see Config.AttemptTimeout),
//     the connection cut without an answer, or an HTTP 5xx that the
//     service did not sign: the breaker opens after Config.Threshold of
//     them in a row.
//
// Everything else is an answer and stays with the host that gave it: any
// status below 500, and a 5xx that the judge given to Transport calls the
// service's own word (WeChat's signature verifies), such as a signed
// SYSTEM_ERROR. A signed business error (ORDERPAID, NOT_ENOUGH) is an answer,
// never an outage. A call the caller cancelled counts for no host.
//
// An open breaker rests for Config.CoolDown; then one call (the probe) tries
// the host again. Its answer closes the breaker; its failure opens it for
// another cool-down, and the call goes on to the other host. So calls return
// to the primary within one cool-down of its recovery.
//
// The host an attempt goes to is in its request's context ([RoleOf]), for
// metrics below this transport; the breakers' states are in [Hosts.Status].
// Only requests addressed to the primary's scheme and host are touched:
// WeChat's other hosts (api.weixin.qq.com) have no backup and pass through.
package failover

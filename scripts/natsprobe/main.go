// Command natsprobe tries one thing on a wxflow NATS server as one user and
// says whether the server refused it, for scripts/reliability.sh's attack
// scenario:
//
//	natsprobe -url URL connect                        # anonymous: must be refused
//	natsprobe -url URL -stranger connect              # a key the server does not know
//	natsprobe -url URL -seed FILE pub SUBJECT         # publish as FILE's user
//	natsprobe -url URL -seed FILE sub SUBJECT         # subscribe as FILE's user
//	natsprobe addshop DATA_DIR SHOP MERCHANT[,…]      # make a shop's NATS user (natsauth.AddShop)
//
// FILE is a role's seed in <data>/nats/creds (worker-all.nk, shop-demo.nk,
// …). It prints one line, "refused: …" (exit 0) or "accepted: …" (exit 1);
// anything else (the user itself not let in, no answer) is an error, exit 2,
// so a probe that could not try cannot pass as a refusal. A publish is
// judged as in natsauth's tests: a sentinel no one may publish to (or hear)
// follows it, and the server answers violations in order, so hearing of the
// sentinel first proves the probe's own message or subscription passed.
//
// addshop stands in for a shop's NATS user being made by the shop tools
// while `wxflow nats` is down: the server reads the shops at its start.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/wxflow/wxflow/internal/natsauth"
)

// sentinel is a subject no wxflow user may publish to.
const sentinel = "wxflow.nobody.may.publish.here"

// wait bounds every answer the probe waits for.
const wait = 10 * time.Second

func main() {
	url := flag.String("url", nats.DefaultURL, "the NATS server")
	seed := flag.String("seed", "", "the user's nkey seed file (none: anonymous)")
	stranger := flag.Bool("stranger", false, "connect with a new key the server does not know")
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		fail("usage: natsprobe [-url URL] [-seed FILE | -stranger] connect | pub SUBJECT | sub SUBJECT; natsprobe addshop DIR SHOP MERCHANTS")
	}
	if args[0] == "addshop" {
		if len(args) != 4 {
			fail("usage: natsprobe addshop DATA_DIR SHOP MERCHANT[,…]")
		}
		file, err := natsauth.AddShop(natsauth.Dir(args[1]), args[2], strings.Split(args[3], ","))
		if err != nil {
			fail(err.Error())
		}
		fmt.Println("shop user:", file)
		return
	}
	errs := make(chan error, 64)
	opts := []nats.Option{nats.Timeout(wait), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })}
	who := "anonymous"
	switch {
	case *stranger:
		who = "a stranger's key"
		kp, err := nkeys.CreateUser()
		if err != nil {
			fail(err.Error())
		}
		pub, _ := kp.PublicKey()
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	case *seed != "":
		role := natsauth.Role(strings.TrimSuffix(filepath.Base(*seed), ".nk"))
		who = string(role)
		more, err := natsauth.ClientOptions(*seed, role)
		if err != nil {
			fail(err.Error())
		}
		opts = append(opts, more...)
	}
	nc, err := nats.Connect(*url, opts...)
	if args[0] == "connect" {
		if err != nil {
			refused("%s connecting: %v", who, err)
		}
		nc.Close()
		accepted("%s connected", who)
	}
	if err != nil {
		fail(fmt.Sprintf("%s could not connect to try: %v", who, err))
	}
	defer nc.Close()
	if len(args) != 2 {
		fail("pub and sub take one subject")
	}
	subject := args[1]
	switch args[0] {
	case "pub":
		if publishRefused(nc, errs, subject) {
			refused("%s publishing on %s: permissions violation", who, subject)
		}
		accepted("%s published on %s", who, subject)
	case "sub":
		if subscribeRefused(nc, errs, subject) {
			refused("%s subscribing to %s: permissions violation", who, subject)
		}
		accepted("%s subscribed to %s", who, subject)
	}
	fail("unknown probe " + args[0])
}

// publishRefused publishes on subject, then on the sentinel, and says
// whether the server refused the first.
func publishRefused(nc *nats.Conn, errs chan error, subject string) bool {
	for _, s := range []string{subject, sentinel} {
		if err := nc.Publish(s, []byte("{}")); err != nil {
			fail(err.Error())
		}
	}
	if err := nc.Flush(); err != nil {
		fail(err.Error())
	}
	return firstRefused(errs, subject)
}

// subscribeRefused subscribes to subject, then to the sentinel (no user may
// hear it either), and says whether the server refused the first.
func subscribeRefused(nc *nats.Conn, errs chan error, subject string) bool {
	for _, s := range []string{subject, sentinel} {
		if _, err := nc.SubscribeSync(s); err != nil {
			fail(err.Error())
		}
	}
	if err := nc.Flush(); err != nil {
		fail(err.Error())
	}
	return firstRefused(errs, subject)
}

// firstRefused waits for the server's violations: subject's (refused) or
// the sentinel's first (subject passed).
func firstRefused(errs chan error, subject string) bool {
	timeout := time.After(wait)
	for {
		select {
		case err := <-errs:
			switch {
			case !errors.Is(err, nats.ErrPermissionViolation):
			case strings.Contains(err.Error(), `"`+subject+`"`):
				return true
			case strings.Contains(err.Error(), `"`+sentinel+`"`):
				return false
			}
		case <-timeout:
			fail("no answer from the server about " + subject)
		}
	}
}

func refused(format string, a ...any) {
	fmt.Printf("refused: "+format+"\n", a...)
	os.Exit(0)
}

func accepted(format string, a ...any) {
	fmt.Printf("accepted: "+format+"\n", a...)
	os.Exit(1)
}

func fail(msg string) {
	fmt.Println("error:", msg)
	os.Exit(2)
}

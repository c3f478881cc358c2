package failover_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/wxflow/wxflow/workers/wechat/failover"
)

// A WeChat Pay client whose primary host answers a bare 502 (a gateway's,
// unsigned) gets its answer from the backup host; the call's body is sent
// again there. After three such failures in a row the primary rests.
func ExampleHosts_Transport() {
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer primary.Close()
	backup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "backup got %s", body)
	}))
	defer backup.Close()

	hosts, err := failover.New(failover.Config{Primary: primary.URL, Backup: backup.URL})
	if err != nil {
		panic(err)
	}
	// The judge of 5xx answers: WeChat's own carry its verified signature.
	isAnswer := func(h http.Header, body []byte) bool { return false }
	client := &http.Client{Transport: hosts.Transport(&http.Transport{}, isAnswer)}
	for range 3 {
		resp, err := client.Post(primary.URL+"/pay/orderquery", "text/xml", strings.NewReader("<xml/>"))
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, string(body))
	}
	for _, st := range hosts.Status() {
		fmt.Println(st.Role, st.State)
	}
	// Output:
	// 200 backup got <xml/>
	// 200 backup got <xml/>
	// 200 backup got <xml/>
	// primary open
	// backup closed
}

package stack

import (
	"fmt"

	"github.com/wxflow/wxflow/workers/books"
)

// NewBooks builds the daily books of each direct merchant wc serves, on
// c's store and NATS (the books process is a worker that needs the
// store). A provider's bill covers all its sub-merchants and is not read
// yet: sub-merchants have no books (docs/OPERATIONS.md).
func NewBooks(s *Settings, c *Conns, wc *WechatClients) ([]*books.Books, error) {
	var out []*books.Books
	for _, mc := range wc.Merchants {
		if mc.Merchant.Partner() {
			continue
		}
		cfg := books.Config{Merchant: mc.Merchant, V2: mc.V2, V3: mc.V3, API: s.BooksAPI, Store: c.Store, JS: c.JS,
			Logger: c.Log.With("merchant", mc.Merchant.Name), ReadyAfter: s.BooksReadyAfter, Preview: s.BooksEvery}
		if c.Metrics != nil {
			cfg.Observer = c.Metrics
		}
		b, err := books.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("books of %s: %w", mc.Merchant.Name, err)
		}
		out = append(out, b)
	}
	return out, nil
}

package stack

import (
	"github.com/wxflow/wxflow/workers/books"
)

// NewBooks builds the daily books of the merchant wc serves, on c's store
// and NATS (the books process is a worker that needs the store).
func NewBooks(s *Settings, c *Conns, wc *WechatClients) (*books.Books, error) {
	cfg := books.Config{Merchant: wc.Merchant, V2: wc.V2, V3: wc.V3, API: s.BooksAPI, Store: c.Store, JS: c.JS,
		Logger: c.Log, ReadyAfter: s.BooksReadyAfter, Preview: s.BooksEvery}
	if c.Metrics != nil {
		cfg.Observer = c.Metrics
	}
	return books.New(cfg)
}

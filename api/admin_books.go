package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wxflow/wxflow/engine"
	"github.com/wxflow/wxflow/workers/books"
)

// The admin page's and API's books: each day's status and discrepancies
// (engine.Store.Books), and a run on demand through the books worker
// (books.RunSubject). The books are the merchant's the server serves.

// adminBooksRoutes adds the books' routes; adminRoutes calls it.
func (s *Server) adminBooksRoutes(handle func(string, http.HandlerFunc)) {
	api, page := s.requireToken, s.requireSession
	handle("GET /admin/api/books", api(s.adminAPIBooksDays))
	handle("GET /admin/api/books/{day}", api(s.adminAPIBooksDay))
	handle("POST /admin/api/books/{day}/run", api(s.adminBooksRun(false)))
	handle("GET /admin/books", page(s.adminBooksPage))
	handle("GET /admin/books/{day}", page(s.adminBooksDayPage))
	handle("POST /admin/books/{day}/run", page(s.adminBooksRun(true)))
}

// booksRunWait bounds how long a run on demand is waited for.
const booksRunWait = 2 * time.Minute

// booksMerchant is the merchant whose books a request shows: ?merchant=
// when it names one served, else the default merchant.
func (s *Server) booksMerchant(r *http.Request) string {
	if m := r.URL.Query().Get("merchant"); m != "" && s.servesMerchant(m) {
		return m
	}
	return s.defaultMerchant().Name
}

// dayOf reads the {day} of the path: 2006-01-02, nothing else.
func dayOf(r *http.Request) (engine.Day, error) {
	return engine.ParseDay(r.PathValue("day"))
}

func (s *Server) adminBooksPage(w http.ResponseWriter, r *http.Request) {
	days, err := s.cfg.Store.BooksDays(r.Context(), s.booksMerchant(r), 90)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	today := engine.DayOf(s.cfg.Now())
	s.render(w, r, http.StatusOK, "books.html", map[string]any{"Title": "Books", "Days": days, "Today": today,
		"Yesterday": today.AddDays(-1), "Message": r.URL.Query().Get("m")})
}

func (s *Server) adminBooksDayPage(w http.ResponseWriter, r *http.Request) {
	day, err := dayOf(r)
	if err != nil {
		http.Error(w, "no such day: want 2006-01-02", http.StatusNotFound)
		return
	}
	data := map[string]any{"Title": "Books " + string(day), "Day": day, "Message": r.URL.Query().Get("m"), "All": r.URL.Query().Get("all") != ""}
	res, err := s.cfg.Store.Books(r.Context(), s.booksMerchant(r), day)
	switch {
	case errors.Is(err, engine.ErrNotFound):
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	default:
		data["Result"], data["Discrepancies"] = res, res.Discrepancies()
		bills, _ := s.cfg.Store.Bills(r.Context(), s.booksMerchant(r), day)
		data["Bills"] = bills
	}
	s.render(w, r, http.StatusOK, "books.html", data)
}

func (s *Server) adminAPIBooksDays(w http.ResponseWriter, r *http.Request) {
	days, err := s.cfg.Store.BooksDays(r.Context(), s.booksMerchant(r), 90)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	if days == nil {
		days = []engine.BooksDay{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"days": days})
}

func (s *Server) adminAPIBooksDay(w http.ResponseWriter, r *http.Request) {
	day, err := dayOf(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_day", "day must be 2006-01-02 (Beijing time)")
		return
	}
	res, err := s.cfg.Store.Books(r.Context(), s.booksMerchant(r), day)
	if errors.Is(err, engine.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no books of "+string(day)+" yet")
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// adminBooksRun asks the books worker to run a day and waits for its answer.
func (s *Server) adminBooksRun(form bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		day, err := dayOf(r)
		if err != nil {
			if form {
				http.Redirect(w, r, "/admin/books?m="+url.QueryEscape("no such day: want 2006-01-02"), http.StatusSeeOther)
				return
			}
			writeError(w, http.StatusBadRequest, "invalid_day", "day must be 2006-01-02 (Beijing time)")
			return
		}
		reply, status, err := s.askBooks(r.Context(), s.booksMerchant(r), day)
		msg := ""
		switch {
		case err != nil:
			msg = err.Error()
		case reply.Code == "ok":
			msg = fmt.Sprintf("books of %s run: %s, %d discrepancies", day, reply.Status, reply.Discrepancies)
		default:
			msg = fmt.Sprintf("books of %s not run (%s): %s", day, reply.Code, reply.Error)
		}
		s.log.Info("admin: books run", "day", day, "admin", actor(r.Context()), "result", msg)
		if form {
			http.Redirect(w, r, "/admin/books/"+string(day)+"?m="+url.QueryEscape(msg), http.StatusSeeOther)
			return
		}
		if status >= 400 {
			writeError(w, status, reply.Code, msg)
			return
		}
		writeJSON(w, status, map[string]any{"message": msg, "reply": reply})
	}
}

// askBooks sends a run request to the books worker and reads its answer.
func (s *Server) askBooks(ctx context.Context, merchant string, day engine.Day) (books.RunReply, int, error) {
	if s.cfg.NC == nil {
		return books.RunReply{Code: "unavailable"}, http.StatusServiceUnavailable, errors.New("no NATS connection")
	}
	req, _ := json.Marshal(books.RunRequest{Day: day})
	ctx, cancel := context.WithTimeout(ctx, booksRunWait)
	defer cancel()
	msg, err := s.cfg.NC.RequestWithContext(ctx, books.RunSubject(merchant), req)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return books.RunReply{Code: "unavailable"}, http.StatusServiceUnavailable, errors.New("no books worker is running (worker books, worker all or wxflow dev)")
	case err != nil:
		return books.RunReply{Code: "unavailable"}, http.StatusGatewayTimeout, fmt.Errorf("the books worker did not answer: %w", err)
	}
	var reply books.RunReply
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return reply, http.StatusBadGateway, fmt.Errorf("the books worker's answer does not read: %w", err)
	}
	switch reply.Code {
	case "ok":
		return reply, http.StatusOK, nil
	case "busy":
		return reply, http.StatusConflict, nil
	case "not_ready":
		return reply, http.StatusConflict, nil
	}
	return reply, http.StatusBadGateway, nil
}

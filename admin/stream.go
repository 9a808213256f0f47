package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Stream is an operation whose answer goes on: following a log, the event
// stream. Req is decoded as for an Op; the answer is newline-delimited JSON
// (Content-Type application/x-ndjson), one line per Item:
//
//	{"item": <Item>}
//	{"error": {"code": …, "message": …}}   a failure once the stream has begun, the last line
//
// A failure before the stream begins is an ordinary error answer. The
// stream ends when the caller goes away, the handler returns, or the
// server stops.
type Stream[Req, Item any] struct {
	Method string
	Path   string
}

func (op Stream[Req, Item]) route() Route {
	return Route{Method: op.Method, Path: op.Path, Reads: true, Stream: true}
}

// streamLine is one line of a stream's answer.
type streamLine[Item any] struct {
	Item  *Item  `json:"item,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// serveCtxKey carries the context of the Serve a request came through.
type serveCtxKey struct{}

// HandleStream attaches fn to op: fn sends items until its context ends
// (the caller left or the server is stopping) or it returns.
func HandleStream[Req, Item any](s *Server, op Stream[Req, Item], fn func(ctx context.Context, req Req, send func(Item) error) error) {
	s.mux.HandleFunc(op.Method+" "+op.Path, func(w http.ResponseWriter, r *http.Request) {
		req, ok := decodeRequest[Req](w, r, op.Method, op.Path)
		if !ok {
			return
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		if sctx, ok := r.Context().Value(serveCtxKey{}).(context.Context); ok {
			stop := context.AfterFunc(sctx, cancel)
			defer stop()
		}
		rc := http.NewResponseController(w)
		enc := json.NewEncoder(w)
		started := false
		send := func(it Item) error {
			if !started {
				started = true
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.WriteHeader(http.StatusOK)
			}
			if err := enc.Encode(streamLine[Item]{Item: &it}); err != nil {
				return err
			}
			return rc.Flush()
		}
		err := fn(ctx, req, send)
		if err == nil || ctx.Err() != nil {
			if !started {
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.WriteHeader(http.StatusOK)
			}
			return
		}
		ae := asError(err)
		s.log.Debug("admin stream failed", zapOp(op.Path), zapErr(err))
		if !started {
			writeError(w, ae)
			return
		}
		enc.Encode(streamLine[Item]{Error: ae})
		rc.Flush()
	})
}

// Follow performs op and calls fn with each item until the stream ends
// (nil), fn fails (its error), ctx ends (ctx's error) or the visor reports
// a failure (an *Error).
func Follow[Req, Item any](ctx context.Context, c *Client, op Stream[Req, Item], req Req, fn func(Item) error) error {
	hresp, err := c.do(ctx, op.Method, op.Path, req)
	if err != nil {
		return err
	}
	defer hresp.Body.Close()
	sc := bufio.NewScanner(hresp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var line streamLine[Item]
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return fmt.Errorf("%s %s: bad stream line: %w", op.Method, op.Path, err)
		}
		switch {
		case line.Error != nil:
			return line.Error
		case line.Item != nil:
			if err := fn(*line.Item); err != nil {
				return err
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s %s: the stream broke: %w", op.Method, op.Path, err)
	}
	return nil
}

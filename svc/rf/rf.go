// Package rf is the route finder: it reads the transport discovery's graph
// and answers the k shortest simple paths between two visors, honouring a
// minimum number of hops.
//
//	POST /v1/paths {"src": pk, "dst": pk, "min_hops": 0, "max_hops": 8, "count": 3}
//	  → {"paths": [[{"pk": …, "type": "stcp"}, …], …]}   (hops after src, shortest first; 404 if none)
//	GET  /health
//
// The graph is the transport discovery's verified entries, refreshed at
// most every RefreshInterval; between two visors the preferred type is used
// (stcp, stcpr, sudph, dmsg). Paths are found with Yen's algorithm over
// hop counts.
//
// A refresh runs on its own goroutine and never under the lock requests
// take: requests answer from the last graph meanwhile (only the very first
// waits). An entry's two signatures are verified once, when it first
// appears (or changes); a refresh of known entries costs no cryptography.
package rf

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/httpauth"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// Limits.
const (
	RefreshInterval = 2 * time.Second
	DefaultMaxHops  = 8
	MaxHopsLimit    = 16
	MaxCount        = 8
	// yenBudget bounds the candidate paths examined per request.
	yenBudget = 64
)

// typeRank orders transport types: direct before relayed.
var typeRank = map[string]int{"stcp": 0, "stcpr": 1, "sudph": 2, "dmsg": 3}

// Hop is one link of a path.
type Hop struct {
	PK   cipher.PubKey `json:"pk"`
	Type string        `json:"type"`
}

// Request is POST /v1/paths's body.
type Request struct {
	Src     cipher.PubKey `json:"src"`
	Dst     cipher.PubKey `json:"dst"`
	MinHops int           `json:"min_hops"`
	MaxHops int           `json:"max_hops"`
	Count   int           `json:"count"`
}

// Response is its answer.
type Response struct {
	Paths [][]Hop `json:"paths"`
}

// graph is an undirected adjacency list with the best type per edge.
type graph map[cipher.PubKey]map[cipher.PubKey]string

func buildGraph(entries []tpdisc.Entry) graph {
	g := graph{}
	add := func(a, b cipher.PubKey, typ string) {
		if g[a] == nil {
			g[a] = map[cipher.PubKey]string{}
		}
		if old, ok := g[a][b]; !ok || typeRank[typ] < typeRank[old] {
			g[a][b] = typ
		}
	}
	for _, e := range entries {
		if _, known := typeRank[e.Type]; !known {
			continue
		}
		add(e.Edges[0], e.Edges[1], e.Type)
		add(e.Edges[1], e.Edges[0], e.Type)
	}
	return g
}

// shortest is a BFS path from src to dst avoiding the removed nodes and
// edges, or nil.
func (g graph) shortest(src, dst cipher.PubKey, noNode map[cipher.PubKey]bool, noEdge map[[2]cipher.PubKey]bool, maxHops int) []cipher.PubKey {
	prev := map[cipher.PubKey]cipher.PubKey{src: src}
	depth := map[cipher.PubKey]int{src: 0}
	queue := []cipher.PubKey{src}
	for len(queue) > 0 {
		at := queue[0]
		queue = queue[1:]
		if at == dst {
			var path []cipher.PubKey
			for n := dst; n != src; n = prev[n] {
				path = append(path, n)
			}
			path = append(path, src)
			slices.Reverse(path)
			return path
		}
		if depth[at] >= maxHops {
			continue
		}
		// Sorted neighbours: answers do not depend on map order.
		next := make([]cipher.PubKey, 0, len(g[at]))
		for n := range g[at] {
			next = append(next, n)
		}
		slices.SortFunc(next, func(a, b cipher.PubKey) int {
			if a.Less(b) {
				return -1
			}
			return 1
		})
		for _, n := range next {
			if _, seen := prev[n]; seen || noNode[n] || noEdge[[2]cipher.PubKey{at, n}] {
				continue
			}
			prev[n] = at
			depth[n] = depth[at] + 1
			queue = append(queue, n)
		}
	}
	return nil
}

// pathHeap orders candidate paths by length.
type pathHeap [][]cipher.PubKey

func (h pathHeap) Len() int           { return len(h) }
func (h pathHeap) Less(i, j int) bool { return len(h[i]) < len(h[j]) }
func (h pathHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *pathHeap) Push(x any)        { *h = append(*h, x.([]cipher.PubKey)) }
func (h *pathHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func samePath(a, b []cipher.PubKey) bool { return slices.Equal(a, b) }

// paths returns up to count simple paths with at least minHops hops, fewest
// hops first (Yen's k shortest paths).
func (g graph) paths(src, dst cipher.PubKey, minHops, maxHops, count int) [][]cipher.PubKey {
	first := g.shortest(src, dst, nil, nil, maxHops)
	if first == nil {
		return nil
	}
	found := [][]cipher.PubKey{first}
	var candidates pathHeap
	for k := 1; k < yenBudget; k++ {
		last := found[k-1]
		for i := 0; i < len(last)-1; i++ {
			spur, root := last[i], last[:i+1]
			noEdge := map[[2]cipher.PubKey]bool{}
			for _, p := range found {
				if len(p) > i && samePath(p[:i+1], root) {
					noEdge[[2]cipher.PubKey{p[i], p[i+1]}] = true
					noEdge[[2]cipher.PubKey{p[i+1], p[i]}] = true
				}
			}
			noNode := map[cipher.PubKey]bool{}
			for _, n := range root[:i] {
				noNode[n] = true
			}
			tail := g.shortest(spur, dst, noNode, noEdge, maxHops-i)
			if tail == nil {
				continue
			}
			cand := append(append([]cipher.PubKey(nil), root[:i]...), tail...)
			dup := slices.ContainsFunc(found, func(p []cipher.PubKey) bool { return samePath(p, cand) }) ||
				slices.ContainsFunc(candidates, func(p []cipher.PubKey) bool { return samePath(p, cand) })
			if !dup && len(cand)-1 <= maxHops {
				heap.Push(&candidates, cand)
			}
		}
		if candidates.Len() == 0 {
			break
		}
		found = append(found, heap.Pop(&candidates).([]cipher.PubKey))
		if n := countLong(found, minHops); n >= count {
			break
		}
	}
	var out [][]cipher.PubKey
	for _, p := range found {
		if len(p)-1 >= max(minHops, 1) && len(out) < count {
			out = append(out, p)
		}
	}
	return out
}

func countLong(paths [][]cipher.PubKey, minHops int) int {
	n := 0
	for _, p := range paths {
		if len(p)-1 >= minHops {
			n++
		}
	}
	return n
}

// Server is the route finder.
type Server struct {
	tpd *tpdisc.Client
	log *zap.Logger
	mux *http.ServeMux

	mu         sync.Mutex // guards g, fetched, refreshing, ready; never held across a refresh
	g          graph
	fetched    time.Time
	refreshing bool
	ready      chan struct{} // closed once the first refresh ended (well or not)
	lastErr    error         // the last refresh's error, for the first requests

	// verified is refresh's alone (one refresh at a time): the entries
	// whose signatures were checked, by ID.
	verified map[tpdisc.ID]tpdisc.SignedEntry
	checks   int           // signature verifications done (tests)
	every    time.Duration // RefreshInterval (tests shorten it)
	took     time.Duration // guarded by mu: the last refresh's duration; refreshes are at least twice that apart

	wg sync.WaitGroup
}

// NewServer returns a route finder reading the transport discovery at
// tpdURL.
func NewServer(tpdURL string, log *zap.Logger) *Server {
	if log == nil {
		log = zap.NewNop()
	}
	_, sk := cipher.GenerateKeyPair() // reads are public; the key signs nothing
	s := &Server{tpd: tpdisc.NewClient(tpdURL, sk), log: log, mux: http.NewServeMux(),
		ready: make(chan struct{}), verified: map[tpdisc.ID]tpdisc.SignedEntry{}, every: RefreshInterval}
	s.mux.HandleFunc("POST /v1/paths", s.handlePaths)
	s.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		httpauth.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "service": "route-finder"})
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close waits for a refresh in progress and releases the discovery client.
func (s *Server) Close() {
	s.wg.Wait()
	s.tpd.Close()
}

// graph returns the current graph, starting a refresh in the background
// when it is older than RefreshInterval. Only before the first refresh has
// ended does it wait.
func (s *Server) graph(ctx context.Context) (graph, error) {
	s.mu.Lock()
	if !s.refreshing && (s.g == nil || time.Since(s.fetched) >= max(s.every, 2*s.took)) {
		s.refreshing = true
		s.wg.Add(1)
		go s.refresh()
	}
	g, ready := s.g, s.ready
	s.mu.Unlock()
	if g != nil {
		return g, nil
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.g == nil {
		return nil, s.lastErr
	}
	return s.g, nil
}

// refreshTimeout bounds one refresh's fetch.
const refreshTimeout = 30 * time.Second

// refresh fetches the discovery's entries, verifies the ones not seen
// before, and swaps in a new graph.
func (s *Server) refresh() {
	defer s.wg.Done()
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	entries, err := s.tpd.AllUnverified(ctx)
	var g graph
	if err == nil {
		next := make(map[tpdisc.ID]tpdisc.SignedEntry, len(entries))
		list := make([]tpdisc.Entry, 0, len(entries))
		for _, se := range entries {
			if old, ok := s.verified[se.Entry.ID]; ok && old == se {
				next[se.Entry.ID] = se // verified before, unchanged
			} else {
				s.checks++
				if se.Verify() != nil {
					continue
				}
				next[se.Entry.ID] = se
			}
			list = append(list, se.Entry)
		}
		s.verified = next
		g = buildGraph(list)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshing, s.took = false, time.Since(began)
	if err != nil {
		s.lastErr = err
		if s.g != nil {
			s.log.Warn("transport discovery unreachable: answering from the last graph", zap.NamedError("err", err))
		}
		s.fetched = time.Now() // retried after RefreshInterval, not at every request
	} else {
		s.g, s.fetched, s.lastErr = g, time.Now(), nil
	}
	select {
	case <-s.ready:
	default:
		close(s.ready)
	}
}

func (s *Server) handlePaths(w http.ResponseWriter, r *http.Request) {
	var req Request
	if !httpauth.ReadJSON(w, r, 1<<10, &req) {
		return
	}
	if err := req.Src.Check(); err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, "src: "+err.Error())
		return
	}
	if err := req.Dst.Check(); err != nil {
		httpauth.WriteError(w, http.StatusBadRequest, "dst: "+err.Error())
		return
	}
	if req.MaxHops <= 0 {
		req.MaxHops = DefaultMaxHops
	}
	req.MaxHops = min(req.MaxHops, MaxHopsLimit)
	req.Count = min(max(req.Count, 1), MaxCount)
	if req.MinHops > req.MaxHops {
		httpauth.WriteError(w, http.StatusBadRequest, "min_hops is above max_hops")
		return
	}
	g, err := s.graph(r.Context())
	if err != nil {
		httpauth.WriteError(w, http.StatusServiceUnavailable, "transport discovery: "+err.Error())
		return
	}
	found := g.paths(req.Src, req.Dst, req.MinHops, req.MaxHops, req.Count)
	if len(found) == 0 {
		httpauth.WriteError(w, http.StatusNotFound, fmt.Sprintf("no path from %s to %s with %d to %d hops", req.Src.Short(), req.Dst.Short(), max(req.MinHops, 1), req.MaxHops))
		return
	}
	resp := Response{Paths: [][]Hop{}}
	for _, p := range found {
		hops := make([]Hop, 0, len(p)-1)
		for i := 1; i < len(p); i++ {
			hops = append(hops, Hop{PK: p[i], Type: g[p[i-1]][p[i]]})
		}
		resp.Paths = append(resp.Paths, hops)
	}
	httpauth.WriteJSON(w, http.StatusOK, resp)
}

// Client asks a route finder for paths.
type Client struct {
	c *httpauth.Client
}

// NewClient returns a client of the route finder at url.
func NewClient(url string) *Client {
	return &Client{c: httpauth.NewClient(url, cipher.SecKey{})}
}

// Close releases idle connections.
func (c *Client) Close() { c.c.Close() }

// ErrNoPath: the route finder knows no path.
var ErrNoPath = errors.New("no path")

// Paths returns up to count paths from src to dst of at least minHops
// hops, shortest first.
func (c *Client) Paths(ctx context.Context, src, dst cipher.PubKey, minHops, count int) ([][]Hop, error) {
	var resp Response
	err := c.c.Call(ctx, http.MethodPost, "/v1/paths", false, Request{Src: src, Dst: dst, MinHops: minHops, MaxHops: MaxHopsLimit, Count: count}, &resp)
	if httpauth.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %w", ErrNoPath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("route finder: %w", err)
	}
	return resp.Paths, nil
}

package dmsg

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
)

// Visors spread over several dmsg servers (one session each, as
// dmsg.sessions_count 1 leaves them) reach each other: a dial to a client on
// another server opens a session with that server, and streams between
// clients that share no server carry data byte-exact, all at once. Clients
// with two sessions reach everyone too, and every server relays.
func TestStreamsAcrossServers(t *testing.T) {
	e := newEnv(t)
	servers := []*runningServer{e.server(ServerConfig{}), e.server(ServerConfig{}), e.server(ServerConfig{})}
	index := map[cipher.PubKey]int{}
	for i, s := range servers {
		index[s.PK()] = i
	}
	// Clients pick a server at random: make them until each server has two
	// of its own.
	on := make([][]*Client, len(servers))
	for made := 0; slices.ContainsFunc(on, func(cs []*Client) bool { return len(cs) < 2 }); made++ {
		if made == 60 {
			t.Fatalf("60 clients and still a server with fewer than two: %v", on)
		}
		c := e.client(1)
		srv := c.Servers()
		if len(srv) != 1 {
			t.Fatalf("a client with sessions_count 1 has %d sessions", len(srv))
		}
		on[index[srv[0]]] = append(on[index[srv[0]]], c)
	}
	// A ring whose neighbours are on different servers, and two clients
	// with two sessions each.
	var ring []*Client
	for k := range 2 {
		for i := range servers {
			ring = append(ring, on[i][k])
		}
	}
	ring = append(ring, e.client(2), e.client(2))
	for i, c := range ring[:6] {
		next := ring[(i+1)%6]
		if slices.Contains(next.Servers(), c.Servers()[0]) {
			t.Fatalf("ring neighbours %d and %d share a server", i, i+1)
		}
	}
	for _, s := range servers {
		if s.Sessions() < 2 {
			t.Fatalf("server %s has %d sessions, want at least 2", s.PK().Short(), s.Sessions())
		}
	}

	const port, size = 50, 256 << 10
	ls := make([]*Listener, len(ring))
	var served sync.WaitGroup
	for i, c := range ring {
		l, err := c.Listen(port)
		if err != nil {
			t.Fatal(err)
		}
		ls[i] = l
		served.Add(1)
		go func() { // answers each stream with the hash of what it read
			defer served.Done()
			for {
				s, err := l.AcceptStream()
				if err != nil {
					return
				}
				go func() {
					defer s.Close()
					buf := make([]byte, size)
					if _, err := io.ReadFull(s, buf); err != nil {
						return
					}
					sum := sha256.Sum256(buf)
					s.Write(sum[:])
				}()
			}
		}()
	}
	// Every client dials its two ring neighbours and both two-session
	// clients, all at once.
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(ring))
	for i, c := range ring {
		targets := []*Client{ring[(i+1)%len(ring)], ring[(i+len(ring)-1)%len(ring)]}
		for _, d := range ring[6:] {
			if d != c {
				targets = append(targets, d)
			}
		}
		for _, d := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := roundTrip(c, d, port, size); err != nil {
					errs <- fmt.Errorf("client %d → %s: %w", i, d.PK().Short(), err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Reaching a client on another server took a session with it.
	for i, c := range ring[:6] {
		next := ring[(i+1)%6]
		if !slices.Contains(c.Servers(), next.Servers()[0]) && !slices.Contains(next.Servers(), c.Servers()[0]) {
			t.Errorf("client %d reached %d with neither holding a session with the other's server", i, i+1)
		}
	}
	for _, l := range ls {
		l.Close()
	}
	served.Wait()
}

// roundTrip sends size random bytes from a to b:port and checks the hash b
// answers.
func roundTrip(a, b *Client, port uint16, size int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := a.Dial(ctx, b.PK(), port)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, size)
	rand.Read(data)
	if _, err := s.Write(data); err != nil {
		return err
	}
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(s, got); err != nil {
		return err
	}
	if want := sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		return fmt.Errorf("the far end read other bytes than were sent")
	}
	return nil
}

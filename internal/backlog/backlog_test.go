package backlog

import "testing"

type conn struct{ closed bool }

func (c *conn) Close() error { c.closed = true; return nil }

func TestReserveBoundsHandshakesAndQueue(t *testing.T) {
	q := New[*conn](2)
	if !q.Reserve() || !q.Reserve() {
		t.Fatal("two reservations on a queue of 2 refused")
	}
	if q.Reserve() {
		t.Fatal("third reservation on a queue of 2 accepted")
	}
	q.Unreserve()
	a := &conn{}
	q.Deliver(a) // the remaining reservation becomes a queued conn
	if !q.Reserve() {
		t.Fatal("the slot given back by Unreserve was not reusable")
	}
	if q.Reserve() {
		t.Fatal("reservation accepted while one slot is queued and one reserved")
	}
	q.Unreserve()
	if got, ok := q.Accept(); !ok || got != a {
		t.Fatalf("Accept = %p, %v; want the delivered conn", got, ok)
	}
	if !q.Reserve() || !q.Reserve() {
		t.Fatal("slots not freed by Accept and Unreserve")
	}
}

func TestCloseClosesWhatWasNotAccepted(t *testing.T) {
	q := New[*conn](4)
	q.Reserve()
	q.Reserve()
	queued, late := &conn{}, &conn{}
	q.Deliver(queued)
	if !q.Close() {
		t.Fatal("first Close reported already closed")
	}
	if q.Close() {
		t.Fatal("second Close reported not yet closed")
	}
	if !queued.closed {
		t.Error("a delivered but unaccepted conn was left open")
	}
	q.Deliver(late) // its handshake finished after Close
	if !late.closed {
		t.Error("a conn delivered after Close was left open")
	}
	if q.Reserve() {
		t.Error("Reserve succeeded on a closed queue")
	}
	if _, ok := q.Accept(); ok {
		t.Error("Accept on a closed queue returned a conn")
	}
}

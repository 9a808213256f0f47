// Package ports is a table of the port numbers a network address uses:
// fixed ones taken on request (listeners) and ephemeral ones handed out
// round robin from a range (dial sides), never one in use. dmsg clients and
// the router use it. It is not safe for concurrent use: its owner's lock
// guards it.
package ports

import "errors"

// ErrExhausted: every ephemeral port is in use.
var ErrExhausted = errors.New("no free ephemeral port")

// Table records ports in use.
type Table struct {
	used        map[uint16]bool
	first, next uint16
}

// New makes a table whose ephemeral ports are first..65535.
func New(first uint16) *Table {
	return &Table{used: map[uint16]bool{}, first: first, next: first}
}

// Take marks p in use; false if it already is.
func (t *Table) Take(p uint16) bool {
	if t.used[p] {
		return false
	}
	t.used[p] = true
	return true
}

// Ephemeral takes the next free port of the ephemeral range.
func (t *Table) Ephemeral() (uint16, error) {
	for i := 0; i <= 0xffff-int(t.first); i++ {
		p := t.next
		t.next++
		if t.next == 0 {
			t.next = t.first
		}
		if t.Take(p) {
			return p, nil
		}
	}
	return 0, ErrExhausted
}

// Free gives p back.
func (t *Table) Free(p uint16) { delete(t.used, p) }

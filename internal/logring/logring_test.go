package logring

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLast(t *testing.T) {
	r := New(3)
	if got := r.Last(5); len(got) != 0 {
		t.Fatalf("empty ring: %v", got)
	}
	for i := range 5 {
		r.Add(fmt.Sprint(i))
	}
	if got := r.Last(5); !slices.Equal(got, []string{"2", "3", "4"}) {
		t.Fatalf("last 5 of 3 kept: %v", got)
	}
	if got := r.Last(2); !slices.Equal(got, []string{"3", "4"}) {
		t.Fatalf("last 2: %v", got)
	}
}

// A follower gets the backlog, then lines as they come, in order, and
// ends with its context.
func TestFollow(t *testing.T) {
	r := New(100)
	r.Add("a")
	r.Add("b")
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- r.Follow(ctx, 1, func(l string) error { got <- l; return nil }) }()
	if l := <-got; l != "b" { // the backlog first
		t.Fatalf("backlog %q", l)
	}
	r.Add("c")
	r.Add("d")
	r.Add("e")
	for _, w := range []string{"c", "d", "e"} {
		select {
		case l := <-got:
			if l != w {
				t.Fatalf("followed %q, want %q", l, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("never got %q", w)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A follower that falls behind is told what it missed; a failing one ends.
func TestFollowBehind(t *testing.T) {
	stop := errors.New("stop")
	r2 := New(4)
	r2.Add("x")
	var got []string
	go func() {
		time.Sleep(10 * time.Millisecond)
		for i := range 10 {
			r2.Add(fmt.Sprint(i))
		}
	}()
	slow := func(l string) error {
		got = append(got, l)
		if l == "x" {
			time.Sleep(100 * time.Millisecond) // ten lines arrive meanwhile
		}
		if len(got) == 6 {
			return stop
		}
		return nil
	}
	if err := r2.Follow(context.Background(), 1, slow); !errors.Is(err, stop) {
		t.Fatalf("Follow returned %v", err)
	}
	if !strings.Contains(got[1], "6 lines skipped") || !slices.Equal(got[2:], []string{"6", "7", "8", "9"}) {
		t.Fatalf("followed %q", got)
	}
}

func TestWriterSplitsLines(t *testing.T) {
	r := New(10)
	w := NewWriter(r)
	w.Write([]byte("one\ntw"))
	w.Write([]byte("o\nthree\n"))
	if got := r.Last(10); !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Fatalf("%q", got)
	}
}

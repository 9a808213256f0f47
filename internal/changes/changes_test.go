package changes

import (
	"sync"
	"testing"
)

// Every waiter that took its channel before a Notify is woken, however
// many wait at once; a channel taken after it waits for the next.
func TestNotifyWakesEveryWaiter(t *testing.T) {
	var s Signal
	var wg sync.WaitGroup
	chs := make([]<-chan struct{}, 100)
	for i := range chs {
		chs[i] = s.Wait()
	}
	for _, ch := range chs {
		wg.Add(1)
		go func() { defer wg.Done(); <-ch }()
	}
	later := make(chan (<-chan struct{}), 1)
	go func() { s.Notify(); later <- s.Wait() }()
	wg.Wait()
	select {
	case <-<-later:
		t.Fatal("a channel taken after Notify was already closed")
	default:
	}
}

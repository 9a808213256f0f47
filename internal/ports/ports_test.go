package ports

import (
	"errors"
	"testing"
)

func TestTable(t *testing.T) {
	tb := New(65533)
	if !tb.Take(65534) || tb.Take(65534) {
		t.Fatal("a fixed port taken twice, or not at all")
	}
	var got []uint16
	for {
		p, err := tb.Ephemeral()
		if errors.Is(err, ErrExhausted) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	if len(got) != 2 || got[0] != 65533 || got[1] != 65535 {
		t.Fatalf("ephemeral ports %v, want [65533 65535] (65534 is taken)", got)
	}
	tb.Free(65533)
	if p, err := tb.Ephemeral(); err != nil || p != 65533 {
		t.Fatalf("after Free: %d, %v", p, err)
	}
}

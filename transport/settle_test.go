package transport

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/skyfleet/skywire/cipher"
	"github.com/skyfleet/skywire/svc/tpdisc"
)

// Settlement messages from the network never panic, and only a HELLO
// signed by the dialer for this listener's type and an ANSWER signed by
// the acceptor are taken.
func FuzzSettlement(f *testing.F) {
	dpk, dsk := cipher.GenerateKeyPair()
	apk, ask := cipher.GenerateKeyPair()
	now := time.Now()
	e := tpdisc.NewEntry(dpk, apk, string(STCP))
	e.Timestamp = now.UnixMilli()
	dsig, _ := e.Sign(dsk)
	asig, _ := e.Sign(ask)
	hello := []byte{settleVersion, byte(len(STCP))}
	hello = append(hello, STCP...)
	hello = binary.BigEndian.AppendUint64(hello, uint64(e.Timestamp))
	hello = append(hello, dsig[:]...)
	f.Add(hello)
	f.Add(append([]byte{settleVersion, byte(answerAccepted)}, asig[:]...))
	f.Add(append([]byte{settleVersion, byte(answerBusy)}, make([]byte, cipher.SigSize)...))
	f.Add([]byte{settleVersion, 200})
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, sig, err := parseHello(b, dpk, apk, STCP, now); err == nil {
			if got.VerifySig(dpk, sig) != nil || got.Type != string(STCP) {
				t.Fatalf("took a hello with a bad signature: %x", b)
			}
		}
		if a, sig, err := parseAnswer(b, e, apk); err == nil && a == answerAccepted {
			if e.VerifySig(apk, sig) != nil {
				t.Fatalf("took an answer with a bad signature: %x", b)
			}
		}
	})
}

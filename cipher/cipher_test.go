package cipher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// generator is the compressed form of secp256k1's base point G = 1·G.
const generator = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"

func one() SecKey {
	sk, err := ParseSecKey(strings.Repeat("0", 63) + "1")
	if err != nil {
		panic(err)
	}
	return sk
}

func TestKnownKey(t *testing.T) {
	if got := one().PubKey().Hex(); got != generator {
		t.Fatalf("PubKey(1) = %s, want %s", got, generator)
	}
}

// TestVectors pins the values published in docs/protocol.md.
func TestVectors(t *testing.T) {
	sk2, _ := ParseSecKey(strings.Repeat("0", 63) + "2")
	if got := sk2.PubKey().Hex(); got != "02c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5" {
		t.Fatalf("pk(2) = %s", got)
	}
	sig, err := Sign(one(), []byte("skywire"))
	if err != nil {
		t.Fatal(err)
	}
	const wantSig = "d8bd181cf747d72df64f2b95c523b2c2869eb47c68f51c928b30a39cac8baa71" +
		"66c9a02bd6a615945262705bf087405ab1871829f002d00a46088d4b77182500" + "01"
	if sig.Hex() != wantSig {
		t.Fatalf("sig = %s", sig)
	}
	shared, err := ECDH(one(), sk2.PubKey())
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("%x", shared); got != "b1c9938f01121e159887ac2c8d393a22e4476ff8212de13fe1939de2a236f0a7" {
		t.Fatalf("ecdh = %s", got)
	}
}

func TestGenerateKeyPair(t *testing.T) {
	pk, sk := GenerateKeyPair()
	if err := pk.Check(); err != nil {
		t.Fatal(err)
	}
	if sk.PubKey() != pk {
		t.Fatal("derived public key differs from the generated one")
	}
	pk2, _ := GenerateKeyPair()
	if pk == pk2 {
		t.Fatal("two generated keys are equal")
	}
	if s := pk.Hex(); len(s) != 66 || strings.ToLower(s) != s {
		t.Fatalf("public key text %q: want 66 lowercase hex characters", s)
	}
	if s := sk.Hex(); len(s) != 64 {
		t.Fatalf("secret key text has %d characters, want 64", len(s))
	}
}

// notOnCurve returns a compressed key whose X has no point on the curve.
func notOnCurve(t *testing.T) string {
	t.Helper()
	for x := 1; x < 1000; x++ {
		var b [33]byte
		b[0] = 2
		b[32] = byte(x)
		b[31] = byte(x >> 8)
		if _, err := secp256k1.ParsePubKey(b[:]); err != nil {
			return fmt.Sprintf("%x", b)
		}
	}
	t.Fatal("no off-curve X found")
	return ""
}

func TestParsePubKey(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
		text string // must appear in the error
	}{
		{"valid", generator, nil, ""},
		{"uppercase accepted", strings.ToUpper(generator), nil, ""},
		{"empty", "", ErrLength, "0 hex characters, want 66"},
		{"short", generator[:64], ErrLength, "64 hex characters"},
		{"long", generator + "00", ErrLength, "68 hex characters"},
		{"not hex", "zz" + generator[2:], ErrHex, "not hexadecimal"},
		{"uncompressed prefix", "04" + generator[2:], ErrPrefix, "first byte is 0x04"},
		{"null", strings.Repeat("0", 66), ErrNullKey, "null"},
		{"not on curve", notOnCurve(t), ErrNotOnCurve, "not on the secp256k1 curve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pk, err := ParsePubKey(tt.in)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if pk.Hex() != strings.ToLower(tt.in) {
					t.Fatalf("round trip: got %s", pk.Hex())
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.text) {
				t.Fatalf("err %q does not say %q", err, tt.text)
			}
		})
	}
}

func TestParseSecKey(t *testing.T) {
	order := "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
	secret := "11223344556677889900aabbccddeeff11223344556677889900aabbccddeeff"
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"valid", secret, nil},
		{"short", secret[:62], ErrLength},
		{"not hex", "g" + secret[1:], ErrHex},
		{"zero", strings.Repeat("0", 64), ErrOutOfRange},
		{"group order", order, ErrOutOfRange},
		{"above order", strings.Repeat("f", 64), ErrOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sk, err := ParseSecKey(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil {
				// The error must never echo a (possibly real) secret.
				if strings.Contains(err.Error(), tt.in[2:20]) {
					t.Fatalf("error %q contains the input", err)
				}
				return
			}
			if sk.Hex() != tt.in {
				t.Fatalf("round trip: got a different key")
			}
		})
	}
}

func TestSecKeyRedacted(t *testing.T) {
	_, sk := GenerateKeyPair()
	secret := sk.Hex()
	type holder struct{ SK SecKey }
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%08v"} {
		for _, arg := range []any{sk, &sk, holder{sk}, []SecKey{sk}} {
			out := fmt.Sprintf(verb, arg)
			if strings.Contains(strings.ToLower(out), secret[:16]) {
				t.Fatalf("fmt %s of %T printed the secret: %s", verb, arg, out)
			}
		}
	}
	// zap, as a subsystem would log it by mistake.
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	log.Info("oops", zap.Any("sk", sk), zap.Stringer("sk2", sk))
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if strings.Contains(fmt.Sprint(v), secret[:16]) {
				t.Fatalf("zap field %s printed the secret", k)
			}
		}
	}
	if reflect.TypeOf(sk).Comparable() {
		t.Fatal("SecKey must not be comparable with ==")
	}
}

func TestSecKeyJSONRoundTrip(t *testing.T) {
	_, sk := GenerateKeyPair()
	b, err := json.Marshal(struct {
		SK SecKey `json:"sk"`
	}{sk})
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		SK SecKey `json:"sk"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.SK.Equal(sk) {
		t.Fatal("secret key changed in a JSON round trip")
	}
}

func TestSignVerify(t *testing.T) {
	pk, sk := GenerateKeyPair()
	other, _ := GenerateKeyPair()
	msg := []byte("route setup 42")
	sig, err := Sign(sk, msg)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(pk, msg, sig); err != nil {
		t.Fatalf("valid signature rejected: %v", err)
	}
	sig2, _ := Sign(sk, msg)
	if sig != sig2 {
		t.Fatal("signing is not deterministic (RFC 6979)")
	}
	if err := Verify(other, msg, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("wrong key: err = %v, want ErrBadSignature", err)
	}
	if err := Verify(pk, []byte("route setup 43"), sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other message: err = %v, want ErrBadSignature", err)
	}
	for i := range sig {
		bad := sig
		bad[i] ^= 0x01
		if err := Verify(pk, msg, bad); err == nil {
			t.Fatalf("signature with byte %d flipped verified", i)
		}
	}
	if _, err := Sign(SecKey{}, msg); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("zero key signed: %v", err)
	}
}

func TestHighSRejected(t *testing.T) {
	pk, sk := GenerateKeyPair()
	msg := []byte("malleable?")
	sig, _ := Sign(sk, msg)
	// (R, N-S) with the Y parity flipped is the same signature mirrored: a
	// plain ECDSA verifier would accept it.
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:64])
	s.Negate()
	hi := sig
	b := s.Bytes()
	copy(hi[32:64], b[:])
	hi[64] ^= 1
	if err := Verify(pk, msg, hi); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("high-S signature: err = %v, want ErrOutOfRange", err)
	}
	if _, err := ParseSig(hi.Hex()); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("ParseSig accepted high S: %v", err)
	}
}

func TestParseSig(t *testing.T) {
	_, sk := GenerateKeyPair()
	sig, _ := Sign(sk, []byte("x"))
	got, err := ParseSig(sig.Hex())
	if err != nil || got != sig {
		t.Fatalf("round trip: %v", err)
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"short", sig.Hex()[:128], ErrLength},
		{"not hex", "x" + sig.Hex()[1:], ErrHex},
		{"zero", strings.Repeat("0", 130), ErrOutOfRange},
		{"bad recovery byte", sig.Hex()[:128] + "04", ErrOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseSig(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestECDH(t *testing.T) {
	pa, sa := GenerateKeyPair()
	pb, sb := GenerateKeyPair()
	ab, err := ECDH(sa, pb)
	if err != nil {
		t.Fatal(err)
	}
	ba, err := ECDH(sb, pa)
	if err != nil {
		t.Fatal(err)
	}
	if ab != ba {
		t.Fatal("ECDH differs between the two sides")
	}
	pc, _ := GenerateKeyPair()
	ac, _ := ECDH(sa, pc)
	if ac == ab {
		t.Fatal("ECDH with different peers gave the same secret")
	}
	if _, err := ECDH(sa, PubKey{}); !errors.Is(err, ErrNullKey) {
		t.Fatalf("null peer key: %v", err)
	}
	if _, err := ECDH(SecKey{}, pb); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("zero secret key: %v", err)
	}
}

func TestPubKeyTextOptional(t *testing.T) {
	var v struct {
		PK PubKey `json:"pk"`
	}
	if err := json.Unmarshal([]byte(`{"pk":""}`), &v); err != nil || !v.PK.IsNull() {
		t.Fatalf("empty pk: %v %v", err, v.PK)
	}
	b, _ := json.Marshal(v)
	if string(b) != `{"pk":""}` {
		t.Fatalf("null key marshals as %s, want an empty string", b)
	}
	err := json.Unmarshal([]byte(`{"pk":"02zz"}`), &v)
	if !errors.Is(err, ErrLength) {
		t.Fatalf("bad pk in JSON: %v", err)
	}
}

func TestLess(t *testing.T) {
	a, _ := ParsePubKey(generator)
	b := a
	b[32]++
	if !a.Less(b) || b.Less(a) || a.Less(a) {
		t.Fatal("Less is not a strict byte order")
	}
}

func FuzzParsePubKey(f *testing.F) {
	f.Add(generator)
	f.Add(strings.Repeat("0", 66))
	f.Add("03" + generator[2:])
	f.Fuzz(func(t *testing.T, s string) {
		pk, err := ParsePubKey(s)
		if err != nil {
			return
		}
		if pk.Check() != nil {
			t.Fatalf("parsed key %s fails Check", pk)
		}
		if pk.Hex() != strings.ToLower(s) {
			t.Fatalf("round trip %q -> %s", s, pk)
		}
	})
}

func FuzzParseSecKey(f *testing.F) {
	f.Add(one().Hex())
	f.Fuzz(func(t *testing.T, s string) {
		sk, err := ParseSecKey(s)
		if err != nil {
			return
		}
		if sk.PubKey().Check() != nil {
			t.Fatal("valid secret key gave an invalid public key")
		}
	})
}

func FuzzVerify(f *testing.F) {
	pk, sk := GenerateKeyPair()
	sig, _ := Sign(sk, []byte("seed"))
	f.Add(sig[:], []byte("seed"))
	f.Add(bytes.Repeat([]byte{0xff}, 65), []byte{})
	f.Fuzz(func(t *testing.T, raw, msg []byte) {
		sig, err := SigFromBytes(raw)
		if err != nil {
			return
		}
		if _, err := ParseSig(sig.Hex()); err != nil {
			t.Fatalf("SigFromBytes accepted what ParseSig rejects: %v", err)
		}
		if Verify(pk, msg, sig) == nil {
			// Only the real signature of "seed" may verify.
			want, _ := Sign(sk, msg)
			if want != sig {
				t.Fatalf("a forged signature verified")
			}
		}
	})
}

func BenchmarkSign(b *testing.B) {
	_, sk := GenerateKeyPair()
	msg := make([]byte, 256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(sk, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	pk, sk := GenerateKeyPair()
	msg := make([]byte, 256)
	sig, _ := Sign(sk, msg)
	b.ReportAllocs()
	for b.Loop() {
		if err := Verify(pk, msg, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkECDH(b *testing.B) {
	_, sk := GenerateKeyPair()
	pk, _ := GenerateKeyPair()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ECDH(sk, pk); err != nil {
			b.Fatal(err)
		}
	}
}
